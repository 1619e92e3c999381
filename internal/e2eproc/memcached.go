package e2eproc

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// Memcached starts a real memcached (Debian's package; `make tools`
// installs it) on a loopback port picked at run time, waits until it
// accepts connections and returns its address. It is stopped when the test
// ends.
func Memcached(t testing.TB) string {
	t.Helper()
	port := Ports(t, 1)[0]
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64", "-I", "4m"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root unless told whom to run as.
		args = append(args, "-u", "root")
	}
	p := Start(t, "memcached", FindTool(t, "memcached"), args...)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p.Exited() {
			t.Fatalf("memcached exited:\n%s", p.Output().Tail(tailBytes))
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached not listening at %s: %v", addr, fmt.Sprint(err))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
