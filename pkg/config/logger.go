package config

import (
	"io"

	"github.com/sirupsen/logrus"
)

// NewLogger returns a logrus logger writing to w at ECS_LOGLEVEL (or
// ECS_LOGLEVEL_ON_INSTANCE for a log file: LogConfig.EffectiveLevel) in the
// ECS_LOG_OUTPUT_FORMAT format (logfmt: logrus's text format with full
// timestamps and no colours; json: one JSON object per line). Opening
// ECS_LOGFILE, if set, is the caller's job, so that it owns closing it.
func NewLogger(lc LogConfig, w io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(w)
	log.SetLevel(logLevel(lc.EffectiveLevel()))
	if lc.Format == "json" {
		log.SetFormatter(&logrus.JSONFormatter{})
	} else {
		log.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	}
	return log
}

// logLevel maps the ECS agent's level names onto logrus levels; crit, ECS's
// highest, becomes logrus's fatal, so only fatal messages pass it, and none
// becomes panic, which the agent never logs at.
func logLevel(level string) logrus.Level {
	switch level {
	case "debug":
		return logrus.DebugLevel
	case "warn":
		return logrus.WarnLevel
	case "error":
		return logrus.ErrorLevel
	case "crit":
		return logrus.FatalLevel
	case "none":
		return logrus.PanicLevel
	default:
		return logrus.InfoLevel
	}
}
