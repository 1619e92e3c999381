package transport

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/atoll-metrics/atoll/internal/certgen"
)

// serveGRPC runs a gRPC server with a health service on a free loopback
// port and returns its address.
func serveGRPC(t *testing.T, c GRPCServerTLS) string {
	t.Helper()
	s, err := NewGRPCServer(c)
	if err != nil {
		t.Fatal(err)
	}
	healthpb.RegisterHealthServer(s, health.NewServer())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func check(t *testing.T, addr string, c GRPCClientTLS) error {
	t.Helper()
	opt, err := c.DialOption()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// TestGRPCMutualTLS: with a client CA, only clients holding a certificate
// that CA signed get past the handshake.
func TestGRPCMutualTLS(t *testing.T) {
	certs, err := certgen.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := certgen.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr := serveGRPC(t, GRPCServerTLS{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, ClientCAFile: certs.CAFile})
	good := GRPCClientTLS{Secure: true, CertFile: certs.ClientCert, KeyFile: certs.ClientKey, CAFile: certs.CAFile}
	if err := check(t, addr, good); err != nil {
		t.Fatalf("a client with a certificate of the CA: %v", err)
	}
	for name, c := range map[string]GRPCClientTLS{
		"plaintext":                   {},
		"TLS without a certificate":   {Secure: true, CAFile: certs.CAFile},
		"a certificate of another CA": {Secure: true, CertFile: other.ClientCert, KeyFile: other.ClientKey, CAFile: certs.CAFile},
		"a server it does not trust":  {Secure: true, CertFile: certs.ClientCert, KeyFile: certs.ClientKey, CAFile: other.CAFile},
		"the wrong server name":       {Secure: true, CertFile: certs.ClientCert, KeyFile: certs.ClientKey, CAFile: certs.CAFile, ServerName: "elsewhere"},
	} {
		if err := check(t, addr, c); err == nil {
			t.Errorf("%s: call succeeded, want a failed handshake", name)
		}
	}
	// Skip-verify trusts any server but still shows the certificate.
	if err := check(t, addr, GRPCClientTLS{Secure: true, SkipVerify: true, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}); err != nil {
		t.Errorf("skip-verify with a client certificate: %v", err)
	}
	// Plain TLS without a client CA takes clients without certificates.
	tlsOnly := serveGRPC(t, GRPCServerTLS{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if err := check(t, tlsOnly, GRPCClientTLS{Secure: true, CAFile: certs.CAFile}); err != nil {
		t.Errorf("TLS without client certificates: %v", err)
	}
}

func TestGRPCTLSConfigErrors(t *testing.T) {
	if _, err := (GRPCServerTLS{CertFile: "x"}).Credentials(); err == nil {
		t.Error("a server certificate without a key was accepted")
	}
	if _, err := (GRPCServerTLS{CertFile: "/nonexistent", KeyFile: "/nonexistent"}).Credentials(); err == nil {
		t.Error("missing certificate files were accepted")
	}
	if _, err := (GRPCClientTLS{CAFile: "x"}).Credentials(); err == nil || !strings.Contains(err.Error(), "secure") {
		t.Errorf("client TLS files without --grpc-client-tls-secure: %v", err)
	}
	if _, err := (GRPCClientTLS{Secure: true, CertFile: "x"}).Credentials(); err == nil {
		t.Error("a client certificate without a key was accepted")
	}
}

// TestCertificateReload: a certificate replaced in place is served from
// the next check on, without a restart.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	a, err := certgen.Write(dir + "/a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := certgen.Write(dir + "/b")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := newKeyPair(a.ServerCert, a.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := kp.get()
	for _, f := range [][2]string{{b.ServerCert, a.ServerCert}, {b.ServerKey, a.ServerKey}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], data, 0o600); err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Minute)
		_ = os.Chtimes(f[1], future, future)
	}
	kp.checked = time.Time{} // as if reloadCheck had passed
	second, err := kp.get()
	if err != nil {
		t.Fatal(err)
	}
	if string(first.Certificate[0]) == string(second.Certificate[0]) {
		t.Error("the replaced certificate was not read again")
	}
}
