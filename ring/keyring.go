package ring

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip encryption: with Config.SecretKeyFile, every gossip packet and
// stream is encrypted and authenticated with AES-GCM (memberlist's own
// encryption), the cluster label bound to it as authenticated data, and
// anything not encrypted with a key of the keyring is dropped. A process
// without a key can neither join nor be heard.
//
// The file holds one key a line, base64 of 16, 24 or 32 random bytes
// (AES-128, -192, -256), e.g. `head -c 32 /dev/urandom | base64`; blank
// lines and lines starting with # are skipped. The first key encrypts;
// every key decrypts. The file is read again every KeyReloadInterval, so
// keys rotate without restarts: add the new key as a second line on every
// member, then move it first on every member, then remove the old one.

// readKeys reads a gossip key file.
func readKeys(file string) ([][]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: gossip key file: %v", errInvalidConfig, err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			// Never quote the line: it is (almost) a key.
			return nil, fmt.Errorf("%w: gossip key file %s line %d: not base64", errInvalidConfig, file, n)
		}
		if l := len(key); l != 16 && l != 24 && l != 32 {
			return nil, fmt.Errorf("%w: gossip key file %s line %d: %d bytes, want 16, 24 or 32", errInvalidConfig, file, n, l)
		}
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) }) {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: gossip key file %s holds no key", errInvalidConfig, file)
	}
	return keys, nil
}

// newKeyring builds the keyring of the key file, if any.
func (c *Config) newKeyring() (*memberlist.Keyring, error) {
	if c.SecretKeyFile == "" {
		return nil, nil
	}
	keys, err := readKeys(c.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	return memberlist.NewKeyring(keys, keys[0])
}

// reloadKeys makes the keyring what the key file now says. A file that
// cannot be read or holds no valid key leaves the keyring as it is.
func (r *Ring) reloadKeys() {
	keys, err := readKeys(r.cfg.SecretKeyFile)
	if err != nil {
		r.logger.Error("cannot reload the gossip keys; keeping the current ones", "err", err)
		return
	}
	kr := r.keyring
	old := kr.GetKeys()
	if bytes.Equal(kr.GetPrimaryKey(), keys[0]) && len(old) == len(keys) &&
		!slices.ContainsFunc(keys, func(k []byte) bool {
			return !slices.ContainsFunc(old, func(o []byte) bool { return bytes.Equal(o, k) })
		}) {
		return
	}
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			r.logger.Error("cannot add a gossip key", "err", err)
			return
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		r.logger.Error("cannot switch the primary gossip key", "err", err)
		return
	}
	for _, o := range old {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, o) }) {
			_ = kr.RemoveKey(o)
		}
	}
	r.logger.Info("gossip keys reloaded", "keys", len(keys), "file", r.cfg.SecretKeyFile)
}

// keyReloadLoop rereads the key file until done closes.
func (r *Ring) keyReloadLoop(done <-chan struct{}) {
	t := time.NewTicker(r.cfg.KeyReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			r.reloadKeys()
		}
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
