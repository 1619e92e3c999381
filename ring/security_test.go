package ring

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

func writeKeys(t *testing.T, file string, keys ...string) {
	t.Helper()
	if err := os.WriteFile(file, []byte("# gossip keys, first encrypts\n"+strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestGossipEncryption: members sharing a key form the ring; a member
// without the key, or with another key, never appears in it, and sees no
// one either.
func TestGossipEncryption(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	writeKeys(t, keyFile, newKey(t))
	otherFile := filepath.Join(dir, "other")
	writeKeys(t, otherFile, newKey(t))

	ms := startCluster(t, 2, func(_ int, cfg *Config) { cfg.SecretKeyFile = keyFile })
	plainCfg := testConfig("plain", ms[0].addr(), ms[1].addr())
	plain := startMember(t, plainCfg)
	plain.r.SetState(StateActive)
	otherCfg := testConfig("other-key", ms[0].addr(), ms[1].addr())
	otherCfg.SecretKeyFile = otherFile
	other := startMember(t, otherCfg)
	other.r.SetState(StateActive)

	eventually(t, "the intruders to fail joining a few times", func() bool {
		return testutil.ToFloat64(plain.r.metrics.joinAttempts.WithLabelValues("failure")) >= 2 &&
			testutil.ToFloat64(other.r.metrics.joinAttempts.WithLabelValues("failure")) >= 2
	})
	for _, m := range ms {
		if got := ids(m.r.Snapshot()); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("%s sees %v, want only the members with the key", m.r.cfg.InstanceID, got)
		}
	}
	for _, m := range []*testMember{plain, other} {
		if got := ids(m.r.Snapshot()); len(got) != 1 {
			t.Errorf("%s sees %v, want only itself", m.r.cfg.InstanceID, got)
		}
	}
}

// TestGossipKeyRotation: a new key is added everywhere, made primary
// everywhere and the old one removed, all by editing the key file; a
// member that knows only the new key then joins.
func TestGossipKeyRotation(t *testing.T) {
	dir := t.TempDir()
	oldKey, newK := newKey(t), newKey(t)
	files := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}
	for _, f := range files {
		writeKeys(t, f, oldKey)
	}
	ms := startCluster(t, 2, func(i int, cfg *Config) {
		cfg.SecretKeyFile = files[i]
		cfg.KeyReloadInterval = 50 * time.Millisecond
	})
	reloaded := func(want ...string) {
		t.Helper()
		eventually(t, "the keyrings to follow the files", func() bool {
			for _, m := range ms {
				keys := m.r.keyring.GetKeys()
				if len(keys) != len(want) || base64.StdEncoding.EncodeToString(m.r.keyring.GetPrimaryKey()) != want[0] {
					return false
				}
			}
			return true
		})
	}
	for _, step := range [][]string{{oldKey, newK}, {newK, oldKey}, {newK}} {
		for _, f := range files {
			writeKeys(t, f, step...)
		}
		reloaded(step...)
		waitHealthy(t, ms, 2)
	}
	newFile := filepath.Join(dir, "c")
	writeKeys(t, newFile, newK)
	cCfg := testConfig("c", ms[0].addr())
	cCfg.SecretKeyFile = newFile
	c := startMember(t, cCfg)
	c.r.SetState(StateActive)
	waitHealthy(t, append(ms, c), 3)

	// A broken file leaves the keys as they were.
	if err := os.WriteFile(files[0], []byte("not base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := base64.StdEncoding.EncodeToString(ms[0].r.keyring.GetPrimaryKey()); got != newK {
		t.Error("a broken key file changed the keyring")
	}
}

func TestKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":      "# nothing\n\n",
		"not base64": "secret!\n",
		"wrong size": base64.StdEncoding.EncodeToString([]byte("short")) + "\n",
	} {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig("x")
		cfg.SecretKeyFile = f
		_, err := New(cfg, nil, nil)
		if !errors.Is(err, errInvalidConfig) {
			t.Errorf("%s: %v, want an invalid config", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret!") {
			t.Errorf("%s: the error quotes the file's content: %v", name, err)
		}
	}
}

// TestUnansweringMemberNeverHealthy: with a probe, a member whose gRPC
// address does not answer is never counted healthy and owns no key; once
// it answers it is, and after failing probes in a row it is not again.
func TestUnansweringMemberNeverHealthy(t *testing.T) {
	var mtx sync.Mutex
	answering := map[string]bool{"a.grpc:10901": true, "b.grpc:10901": true}
	probe := func(_ context.Context, m Member) error {
		mtx.Lock()
		defer mtx.Unlock()
		if !answering[m.GRPCAddr] {
			return errors.New("connection refused")
		}
		return nil
	}
	ms := startCluster(t, 2, func(_ int, cfg *Config) { cfg.Probe = probe })
	rogueCfg := testConfig("rogue", ms[0].addr())
	rogueCfg.Probe = probe
	rogue := startMember(t, rogueCfg)
	rogue.r.SetState(StateActive)
	eventually(t, "the rogue to be seen", func() bool {
		_, ok := member(ms[0].r.Snapshot(), "rogue")
		return ok
	})
	time.Sleep(time.Second)
	for _, m := range ms {
		s := m.r.Snapshot()
		if s.Healthy("rogue") {
			t.Fatalf("%s counts the unanswering member healthy", m.r.cfg.InstanceID)
		}
		for _, o := range ownersOf(s) {
			if slices.Contains(o, "rogue") {
				t.Fatalf("%s places keys on the unanswering member", m.r.cfg.InstanceID)
			}
		}
	}
	mtx.Lock()
	answering["rogue.grpc:10901"] = true
	mtx.Unlock()
	waitHealthy(t, append(ms, rogue), 3)
	mtx.Lock()
	answering["rogue.grpc:10901"] = false
	mtx.Unlock()
	eventually(t, "the member that stopped answering to lose its health", func() bool {
		return !ms[0].r.Snapshot().Healthy("rogue")
	})
}
