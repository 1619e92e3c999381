package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/bucket"
)

// Secrets belong in files (--objstore.config-file, --http.config, the
// ring's key file): a process's command line is readable by anyone on the
// host. What a flag holds inline anyway is shown through these functions
// wherever flags are shown: the flags and config status pages, the UI,
// pprof's cmdline, logs.

// secretFlags may hold credentials inline (an S3 secret key in the bucket
// YAML): their values are shown through a function that masks them.
var secretFlags = map[string]func(string) string{"objstore.config": maskedBucketYAML}

// maskedFlagValue is a flag's value fit to show: secrets of inline configs
// masked, and the password of any URL (user:password@host) too.
func maskedFlagValue(name, v string) string {
	if v == "" {
		return v
	}
	if mask := secretFlags[name]; mask != nil {
		return mask(v)
	}
	return maskedURLs(v)
}

// maskedURLs masks the passwords of the URLs among the comma- or
// newline-separated parts of v (repeatable flags show as one string).
func maskedURLs(v string) string {
	if !strings.Contains(v, "@") {
		return v
	}
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' || r == '[' || r == ']' })
	for _, p := range parts {
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			continue
		}
		if _, has := u.User.Password(); has {
			v = strings.ReplaceAll(v, p, strings.Replace(u.Redacted(), "xxxxx", "<secret>", 1))
		}
	}
	return v
}

// flagValues lists a command's flags and their values for
// /api/v1/status/flags and /api/v1/status/config, secrets masked.
func flagValues(app *kingpin.Application, cmd *kingpin.CmdClause) map[string]string {
	out := map[string]string{}
	for _, fs := range [][]*kingpin.FlagModel{app.Model().Flags, cmd.Model().Flags} {
		for _, f := range fs {
			out[f.Name] = maskedFlagValue(f.Name, f.Value.String())
		}
	}
	return out
}

// maskedBucketYAML is an inline bucket config with its secrets shown as
// <secret>; one that does not parse is not shown at all.
func maskedBucketYAML(v string) string {
	cfg, err := bucket.ParseConfig([]byte(v))
	if err != nil {
		return "<secret>"
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "<secret>"
	}
	return string(out)
}

// maskedArgs is the command line with every flag value masked as
// maskedFlagValue does.
func maskedArgs(args []string) []string {
	args = slices.Clone(args)
	for i, a := range args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch {
		case !strings.HasPrefix(a, "--"):
		case ok:
			args[i] = "--" + name + "=" + maskedFlagValue(name, value)
		case i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
			args[i+1] = maskedFlagValue(name, args[i+1])
		}
	}
	return args
}

// maskedCmdline serves the command line as pprof does, secrets masked.
func maskedCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, strings.Join(maskedArgs(os.Args), "\x00"))
}
