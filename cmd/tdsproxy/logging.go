package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tdsproxy/tdsproxy/configs"
)

// newLogger builds the process logger from the log section: JSON lines
// (zap's production encoder, ISO 8601 times) unless the format is console, or
// auto with the log going to a terminal. The returned function flushes the
// log and closes its file; call it once, last.
//
// Unlike zap.NewProduction it never samples: each connection's one
// "connection closed" line is the record, and dropping some would lose them.
func newLogger(cfg configs.LogConfig, stderrIsTerminal bool) (*zap.Logger, func(), error) {
	var level zapcore.Level
	switch cfg.Level {
	case "debug":
		level = zapcore.DebugLevel
	case "info", "":
		level = zapcore.InfoLevel
	case "warn":
		level = zapcore.WarnLevel
	case "error":
		level = zapcore.ErrorLevel
	default:
		return nil, nil, &configs.KeyError{Key: "log.level", Err: fmt.Errorf("%q is not one of debug, info, warn, error", cfg.Level)}
	}

	var out zapcore.WriteSyncer = zapcore.Lock(os.Stderr)
	toTerminal := stderrIsTerminal
	closeFile := func() {}
	if cfg.File != "" {
		// Append, so a restart keeps the earlier lines. Logs hold client
		// addresses and user names, not secrets (passwords never reach
		// them): 0640 lets an admin group read them.
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, &configs.KeyError{Key: "log.file", Err: fmt.Errorf("cannot open for appending: %w", err)}
		}
		out = zapcore.Lock(f)
		toTerminal = false
		closeFile = func() { _ = f.Close() }
	}

	var enc zapcore.Encoder
	switch cfg.Format {
	case "json":
		enc = zapcore.NewJSONEncoder(jsonEncoderConfig())
	case "console":
		enc = zapcore.NewConsoleEncoder(consoleEncoderConfig(toTerminal))
	case "auto", "":
		if toTerminal {
			enc = zapcore.NewConsoleEncoder(consoleEncoderConfig(true))
		} else {
			enc = zapcore.NewJSONEncoder(jsonEncoderConfig())
		}
	default:
		closeFile()
		return nil, nil, &configs.KeyError{Key: "log.format", Err: fmt.Errorf("%q is not one of json, console, auto", cfg.Format)}
	}

	core := zapcore.NewCore(enc, out, zap.NewAtomicLevelAt(level))
	log := zap.New(core, zap.ErrorOutput(out), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel))
	cleanup := func() {
		_ = log.Sync() // fails harmlessly on a terminal (ENOTTY/EINVAL)
		closeFile()
	}
	return log, cleanup, nil
}

func jsonEncoderConfig() zapcore.EncoderConfig {
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	return ec
}

func consoleEncoderConfig(color bool) zapcore.EncoderConfig {
	ec := zap.NewDevelopmentEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	if color {
		ec.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	return ec
}

// isTerminal reports whether f is a character device, i.e. a terminal.
// /dev/null is one too; that only means console format for lines nobody
// reads. Stat works on every OS, unlike a termios ioctl.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
