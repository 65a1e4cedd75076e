package config

import (
	"context"
	"log/slog"
	"maps"

	"github.com/sirupsen/logrus"
)

// NewSlog returns a *slog.Logger that writes through log (normally from
// NewLogger), so packages that log with log/slog share the agent's
// ECS_LOGLEVEL, ECS_LOG_OUTPUT_FORMAT and output. Attribute groups become
// dotted field names ("task.arn").
func NewSlog(log *logrus.Logger) *slog.Logger {
	return slog.New(&logrusHandler{log: log, fields: logrus.Fields{}})
}

// logrusHandler is a slog.Handler that hands records to logrus.
type logrusHandler struct {
	log    *logrus.Logger
	fields logrus.Fields // from WithAttrs; never mutated after creation
	prefix string        // from WithGroup, ending in "."
}

var _ slog.Handler = (*logrusHandler)(nil)

func (h *logrusHandler) Enabled(_ context.Context, level slog.Level) bool {
	return h.log.IsLevelEnabled(logrusLevel(level))
}

func (h *logrusHandler) Handle(_ context.Context, r slog.Record) error {
	fields := make(logrus.Fields, len(h.fields)+r.NumAttrs())
	maps.Copy(fields, h.fields)
	r.Attrs(func(a slog.Attr) bool {
		addAttr(fields, h.prefix, a)
		return true
	})
	entry := h.log.WithFields(fields)
	if !r.Time.IsZero() {
		entry = entry.WithTime(r.Time)
	}
	// Entry.Log never exits or panics, whatever the level.
	entry.Log(logrusLevel(r.Level), r.Message)
	return nil
}

func (h *logrusHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	fields := maps.Clone(h.fields)
	for _, a := range attrs {
		addAttr(fields, h.prefix, a)
	}
	return &logrusHandler{log: h.log, fields: fields, prefix: h.prefix}
}

func (h *logrusHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logrusHandler{log: h.log, fields: h.fields, prefix: h.prefix + name + "."}
}

func addAttr(fields logrus.Fields, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			addAttr(fields, p, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	fields[prefix+a.Key] = v.Any()
}

func logrusLevel(l slog.Level) logrus.Level {
	switch {
	case l >= slog.LevelError:
		return logrus.ErrorLevel
	case l >= slog.LevelWarn:
		return logrus.WarnLevel
	case l >= slog.LevelInfo:
		return logrus.InfoLevel
	default:
		return logrus.DebugLevel
	}
}
