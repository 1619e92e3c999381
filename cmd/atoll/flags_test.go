package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
)

func TestNormalizeBoolFlags(t *testing.T) {
	app := kingpin.New("t", "")
	cmd := app.Command("receive", "")
	flush := cmd.Flag("receive.flush-on-shutdown", "").Default("true").Bool()
	name := cmd.Flag("name", "").String()
	for _, c := range []struct {
		args      []string
		wantFlush bool
		wantName  string
	}{
		{[]string{"receive"}, true, ""},
		{[]string{"receive", "--receive.flush-on-shutdown=false"}, false, ""},
		{[]string{"receive", "--no-receive.flush-on-shutdown"}, false, ""},
		{[]string{"receive", "--receive.flush-on-shutdown=true", "--name=false"}, true, "false"},
	} {
		*flush, *name = true, ""
		if _, err := app.Parse(normalizeBoolFlags(app, c.args)); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if *flush != c.wantFlush || *name != c.wantName {
			t.Errorf("%v: flush=%v name=%q", c.args, *flush, *name)
		}
	}
	args := []string{"receive", "--", "--receive.flush-on-shutdown=false"}
	if got := normalizeBoolFlags(app, args); !slices.Equal(got, args) {
		t.Errorf("arguments after -- changed: %v", got)
	}
}

func TestFlagValuesHideInlineCredentials(t *testing.T) {
	app := kingpin.New("t", "")
	cmd := app.Command("store", "")
	cmd.Flag("objstore.config", "").String()
	cmd.Flag("data-dir", "").String()
	if _, err := app.Parse([]string{"store", "--objstore.config=type: S3\nconfig: {secret_key: s3cr3t}", "--data-dir=/d"}); err != nil {
		t.Fatal(err)
	}
	got := flagValues(app, cmd)
	if got["objstore.config"] != "<secret>" || got["data-dir"] != "/d" {
		t.Errorf("flag values = %v, want the inline bucket config hidden and the rest shown", got)
	}
	// A valid one is shown with its secrets masked.
	if _, err := app.Parse([]string{"store", "--objstore.config=type: S3\nconfig: {bucket: b, endpoint: e, access_key: a, secret_key: s3cr3t}"}); err != nil {
		t.Fatal(err)
	}
	if v := flagValues(app, cmd)["objstore.config"]; strings.Contains(v, "s3cr3t") || !strings.Contains(v, "secret_key: <secret>") || !strings.Contains(v, "bucket: b") {
		t.Errorf("inline bucket config shown as %q, want it with the secret masked", v)
	}
}

func TestMaskedArgs(t *testing.T) {
	args := []string{"atoll", "query-frontend",
		"--query-frontend.downstream-url=https://user:hunter2@querier:10902",
		"--query-frontend.downstream-url", "http://u:hunter2@q2:10902/prefix",
		"--objstore.config", "type: S3\nconfig: {bucket: b, endpoint: e, access_key: a, secret_key: hunter2}",
		"--http-address=0.0.0.0:10902",
	}
	got := strings.Join(maskedArgs(args), " ")
	if strings.Contains(got, "hunter2") {
		t.Errorf("masked command line still holds the secret: %q", got)
	}
	for _, want := range []string{"https://user:<secret>@querier:10902", "http://u:<secret>@q2:10902/prefix", "secret_key: <secret>", "--http-address=0.0.0.0:10902"} {
		if !strings.Contains(got, want) {
			t.Errorf("masked command line %q lacks %q", got, want)
		}
	}
}

// TestListenDefaults: `atoll all` and `atoll bucket web` listen on
// loopback unless told otherwise; cluster components, which other hosts
// must reach, on all interfaces.
func TestListenDefaults(t *testing.T) {
	app := kingpin.New("atoll", "")
	setups := map[string]setupFunc{}
	registerAll(app, setups)
	registerReceive(app, setups)
	registerQuery(app, setups)
	registerQueryFrontend(app, setups)
	registerStore(app, setups)
	registerBucket(app, setups)
	registerCompact(app, setups)
	want := map[string]string{
		"all/http-address": "127.0.0.1:10902", "all/remote-write.address": "127.0.0.1:19291", "all/grpc-address": "127.0.0.1:10901",
		"bucket web/http-address": "127.0.0.1:10902",
		"receive/http-address":    "0.0.0.0:10902", "receive/remote-write.address": "0.0.0.0:19291", "receive/grpc-address": "0.0.0.0:10901",
		"query/http-address": "0.0.0.0:10902", "store/grpc-address": "0.0.0.0:10901",
		"query-frontend/http-address": "0.0.0.0:10902", "compact/http-address": "0.0.0.0:10912",
	}
	var walk func(cmds []*kingpin.CmdModel)
	walk = func(cmds []*kingpin.CmdModel) {
		for _, c := range cmds {
			for _, f := range c.Flags {
				if w, ok := want[c.FullCommand+"/"+f.Name]; ok {
					if got := strings.Join(f.Default, ","); got != w {
						t.Errorf("%s --%s defaults to %q, want %q", c.FullCommand, f.Name, got, w)
					}
					delete(want, c.FullCommand+"/"+f.Name)
				}
			}
			walk(c.Commands)
		}
	}
	walk(app.Model().Commands)
	for k := range want {
		t.Errorf("no flag %s", k)
	}
}
