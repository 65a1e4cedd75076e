package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/berth-dev/berth/pkg/config"
)

// logOutput is where the agent's own log goes: standard error, or
// ECS_LOGFILE rotated as ECS_LOG_ROLLOVER_TYPE, ECS_LOG_MAX_FILE_SIZE_MB and
// ECS_LOG_MAX_ROLL_COUNT say.
type logOutput struct {
	io.Writer
	// close stops the hourly rotation, if any, and closes the file.
	close func()
}

// openLogOutput opens ECS_LOGFILE for appending, or returns stderr. With
// rollover type size the file is rotated when a write would take it past
// the size; with hourly (or date) at the top of every hour, by a goroutine
// that close stops and waits for; with none it only grows. Rotated files
// are named FILE-TIMESTAMP (lumberjack's naming) and the newest
// ECS_LOG_MAX_ROLL_COUNT are kept.
func openLogOutput(lc config.LogConfig, stderr io.Writer) (logOutput, error) {
	if lc.File == "" {
		return logOutput{Writer: stderr, close: func() {}}, nil
	}
	if lc.RolloverType == "none" {
		f, err := os.OpenFile(lc.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return logOutput{}, fmt.Errorf("open ECS_LOGFILE: %w", err)
		}
		return logOutput{Writer: f, close: func() { _ = f.Close() }}, nil
	}
	// Open (or create) the file now, so that a bad path stops the agent at
	// start rather than on its first log line.
	f, err := os.OpenFile(lc.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return logOutput{}, fmt.Errorf("open ECS_LOGFILE: %w", err)
	}
	_ = f.Close()
	lj := &lumberjack.Logger{Filename: lc.File, MaxBackups: lc.MaxRollCount, LocalTime: true}
	if lc.RolloverType == "size" {
		// lumberjack counts whole MiB; the ECS agent's MB may be a fraction.
		lj.MaxSize = max(1, int(math.Ceil(lc.MaxFileSizeMB)))
	} else {
		lj.MaxSize = math.MaxInt32 // hourly: only the clock rotates
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if lc.RolloverType != "size" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rotateHourly(ctx, lj, time.Now)
		}()
	}
	return logOutput{Writer: lj, close: func() {
		cancel()
		wg.Wait()
		_ = lj.Close()
	}}, nil
}

// rotateHourly rotates the log at the top of every hour until ctx ends.
func rotateHourly(ctx context.Context, lj *lumberjack.Logger, now func() time.Time) {
	for {
		t := now()
		next := t.Truncate(time.Hour).Add(time.Hour)
		timer := time.NewTimer(next.Sub(t))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
			_ = lj.Rotate()
		}
	}
}
