// Command atoll is the one binary of Atoll: run it as `atoll all` for a
// single process holding everything, or as one component per process
// (receive, query, ...) for a cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
)

// setupFunc adds a component's actors to g. Resources that must outlive
// every actor (open TSDBs) are released by the returned cleanup, which runs
// after g.Run has returned.
type setupFunc func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (cleanup func(), err error)

func main() {
	os.Exit(runMain(os.Args[1:]))
}

func runMain(args []string) int {
	app := kingpin.New("atoll", "Atoll: horizontally scalable, highly available long-term storage for Prometheus.\n\n"+
		"Start with `atoll all`: one process that takes Prometheus remote write and answers PromQL.")
	app.Version(versionString())
	app.HelpFlag.Short('h')
	logLevel := app.Flag("log.level", "Only log messages with this severity or above.").
		Default("info").Enum("debug", "info", "warn", "error")
	logFormat := app.Flag("log.format", "Log format: logfmt (key=value) or json.").
		Default("logfmt").Enum("logfmt", "json")

	setups := map[string]setupFunc{}
	registerAll(app, setups)
	registerReceive(app, setups)
	registerQuery(app, setups)
	registerQueryFrontend(app, setups)
	registerStore(app, setups)
	registerBucket(app, setups)
	registerCompact(app, setups)

	cmd, err := app.Parse(normalizeBoolFlags(app, args))
	if err != nil {
		fmt.Fprintf(os.Stderr, "atoll: %v\n\nRun `atoll --help` for usage.\n", err)
		return 2
	}
	logger := newLogger(*logLevel, *logFormat).With("component", cmd)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("atoll"),
	)

	var g run.Group
	cleanup, err := setups[cmd](&g, logger, reg)
	if err != nil {
		logger.Error("cannot start", "err", err)
		if cleanup != nil {
			cleanup()
		}
		return 1
	}
	addSignalHandler(&g, logger)
	logger.Info("starting atoll", "version", buildVersion, "revision", buildRevision)
	err = g.Run()
	if cleanup != nil {
		cleanup()
	}
	var sig run.SignalError
	if err != nil && !errors.As(err, &sig) {
		logger.Error("stopped with error", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// addSignalHandler stops every actor on SIGINT or SIGTERM.
func addSignalHandler(g *run.Group, logger *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(c)
		select {
		case s := <-c:
			logger.Info("received signal, stopping", "signal", s.String())
			return run.SignalError{Signal: s}
		case <-ctx.Done():
			return nil
		}
	}, func(error) { cancel() })
}

func newLogger(level, format string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// normalizeBoolFlags rewrites --flag=true and --flag=false of boolean flags
// into the --flag and --no-flag forms the flag parser understands, so both
// spellings users know from other tools work.
func normalizeBoolFlags(app *kingpin.Application, args []string) []string {
	isBool := map[string]bool{}
	model := app.Model()
	collect := func(flags []*kingpin.FlagModel) {
		for _, f := range flags {
			if f.IsBoolFlag() {
				isBool[f.Name] = true
			}
		}
	}
	collect(model.Flags)
	for _, c := range model.Commands {
		collect(c.Flags)
	}
	out := make([]string, 0, len(args))
	for _, a := range args {
		if a == "--" {
			break
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if ok && strings.HasPrefix(a, "--") && isBool[name] {
			switch strings.ToLower(value) {
			case "true", "1":
				a = "--" + name
			case "false", "0":
				a = "--no-" + name
			}
		}
		out = append(out, a)
	}
	return append(out, args[len(out):]...)
}
