package localnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// FreePorts asks the kernel for n distinct loopback ports free for TCP and
// UDP alike (gossip listens on both). They are released before the caller's
// process binds them, which leaves a small race a quiet machine rarely
// loses; callers that must not lose it start again on a bind failure.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		held = append(held, u)
		ports = append(ports, port)
	}
	return ports, nil
}

// ErrExited is returned, wrapped, by WaitReady when the process it waits
// for exits first.
var ErrExited = errors.New("exited before it was ready")

// WaitReady polls url until it answers 200, for at most timeout, or until
// exited (which may be nil) is closed: the process that should answer is
// gone.
func WaitReady(ctx context.Context, url string, timeout time.Duration, exited <-chan struct{}) error {
	return WaitReadyWith(ctx, http.DefaultClient, url, timeout, exited)
}

// WaitReadyWith is WaitReady through client, e.g. one that trusts a test
// CA; credentials go in the URL (https://user:password@host/-/ready).
func WaitReadyWith(ctx context.Context, client *http.Client, url string, timeout time.Duration, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s: %w", req.URL.Redacted(), ErrExited)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", req.URL.Redacted(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FetchProfile downloads a pprof profile from url (for example
// http://host/debug/pprof/profile?seconds=15) to path.
func FetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
