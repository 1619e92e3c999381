package transport

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// GRPCServerTLS is the TLS of a gRPC server: --grpc-server-tls-cert,
// --grpc-server-tls-key and --grpc-server-tls-client-ca, as Thanos.
type GRPCServerTLS struct {
	CertFile, KeyFile string
	// ClientCAFile makes TLS mutual: only clients with a certificate this
	// CA signed complete the handshake.
	ClientCAFile string
}

// Enabled reports whether the server speaks TLS.
func (c GRPCServerTLS) Enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// Mutual reports whether clients must show a certificate.
func (c GRPCServerTLS) Mutual() bool { return c.ClientCAFile != "" }

// Credentials are the server's transport credentials: TLS when
// configured, else plaintext.
func (c GRPCServerTLS) Credentials() (credentials.TransportCredentials, error) {
	switch {
	case !c.Enabled() && c.ClientCAFile == "":
		return insecure.NewCredentials(), nil
	case c.CertFile == "" || c.KeyFile == "":
		return nil, errors.New("gRPC server TLS needs both a certificate and a key (--grpc-server-tls-cert, --grpc-server-tls-key)")
	}
	kp, err := newKeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.getCertificate}
	if c.ClientCAFile == "" {
		return credentials.NewTLS(base), nil
	}
	cas, err := newCAPool(c.ClientCAFile)
	if err != nil {
		return nil, err
	}
	base.ClientAuth = tls.RequireAndVerifyClientCert
	// Each handshake takes the CA pool as the file is now, so a CA added
	// for a rotation is trusted without a restart.
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool, err := cas.get()
		if err != nil {
			return nil, err
		}
		cfg := base.Clone()
		cfg.GetConfigForClient = nil
		cfg.ClientCAs = pool
		return cfg, nil
	}
	return credentials.NewTLS(base), nil
}

// GRPCClientTLS is the TLS of gRPC clients reaching other components:
// --grpc-client-tls-secure, --grpc-client-tls-skip-verify,
// --grpc-client-tls-cert, --grpc-client-tls-key, --grpc-client-tls-ca and
// --grpc-client-server-name, as Thanos.
type GRPCClientTLS struct {
	Secure     bool
	SkipVerify bool
	// CertFile and KeyFile are the client certificate shown to servers
	// that require one (mTLS).
	CertFile, KeyFile string
	// CAFile verifies servers; empty uses the system's roots.
	CAFile string
	// ServerName is the name expected in servers' certificates; empty
	// uses the host of the address dialled.
	ServerName string
}

// Credentials are the client's transport credentials.
func (c GRPCClientTLS) Credentials() (credentials.TransportCredentials, error) {
	cfg, err := c.TLSConfig()
	if err != nil || cfg == nil {
		return insecure.NewCredentials(), err
	}
	return credentials.NewTLS(cfg), nil
}

// TLSConfig is the client's TLS, for an HTTP client reaching the same
// components; nil without --grpc-client-tls-secure.
func (c GRPCClientTLS) TLSConfig() (*tls.Config, error) {
	if !c.Secure {
		if c.CertFile != "" || c.CAFile != "" || c.SkipVerify || c.ServerName != "" {
			return nil, errors.New("gRPC client TLS settings given without --grpc-client-tls-secure")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.SkipVerify}
	if c.CAFile != "" {
		cas, err := newCAPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		if cfg.RootCAs, err = cas.get(); err != nil {
			return nil, err
		}
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		kp, err := newKeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return kp.get() }
	case c.CertFile != "" || c.KeyFile != "":
		return nil, errors.New("gRPC client certificate needs both --grpc-client-tls-cert and --grpc-client-tls-key")
	}
	return cfg, nil
}

// DialOption is Credentials as a grpc.DialOption.
func (c GRPCClientTLS) DialOption() (grpc.DialOption, error) {
	creds, err := c.Credentials()
	if err != nil {
		return nil, err
	}
	return grpc.WithTransportCredentials(creds), nil
}

// handshakeTimeout bounds a connection's TLS handshake on gRPC servers
// (gRPC's own default is two minutes), so a client that opens connections
// and says nothing holds them briefly.
const handshakeTimeout = 20 * time.Second

// NewGRPCServer returns a gRPC server with the given TLS, sized for
// batches of series and chunks.
func NewGRPCServer(c GRPCServerTLS, extra ...grpc.ServerOption) (*grpc.Server, error) {
	creds, err := c.Credentials()
	if err != nil {
		return nil, err
	}
	opts := append([]grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.MaxRecvMsgSize(64 << 20),
		grpc.MaxSendMsgSize(64 << 20),
	}, extra...)
	return grpc.NewServer(opts...), nil
}

// reloadCheck is how often a certificate's files are looked at for a
// change: certificate managers replace them in place.
const reloadCheck = 10 * time.Second

// keyPair is a certificate and key read from files, read again when a file
// changed (looked at no more often than reloadCheck).
type keyPair struct {
	certFile, keyFile string

	mtx     sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time
	checked time.Time
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	if _, err := kp.get(); err != nil {
		return nil, err
	}
	return kp, nil
}

func (kp *keyPair) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() }

func (kp *keyPair) get() (*tls.Certificate, error) {
	kp.mtx.Lock()
	defer kp.mtx.Unlock()
	now := time.Now()
	if kp.cert != nil && now.Sub(kp.checked) < reloadCheck {
		return kp.cert, nil
	}
	kp.checked = now
	stamp := [2]time.Time{modTime(kp.certFile), modTime(kp.keyFile)}
	if kp.cert != nil && stamp == kp.stamp {
		return kp.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		if kp.cert != nil {
			// Half-replaced files: keep the certificate that worked.
			return kp.cert, nil
		}
		return nil, fmt.Errorf("load certificate %s and key %s: %w", kp.certFile, kp.keyFile, err)
	}
	kp.cert, kp.stamp = &cert, stamp
	return kp.cert, nil
}

// caPool is a CA bundle read from a file, read again when it changed.
type caPool struct {
	file string

	mtx     sync.Mutex
	pool    *x509.CertPool
	data    []byte
	checked time.Time
}

func newCAPool(file string) (*caPool, error) {
	p := &caPool{file: file}
	if _, err := p.get(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *caPool) get() (*x509.CertPool, error) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	now := time.Now()
	if p.pool != nil && now.Sub(p.checked) < reloadCheck {
		return p.pool, nil
	}
	p.checked = now
	data, err := os.ReadFile(p.file)
	if err != nil {
		if p.pool != nil {
			return p.pool, nil
		}
		return nil, fmt.Errorf("read CA %s: %w", p.file, err)
	}
	if p.pool != nil && bytes.Equal(data, p.data) {
		return p.pool, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		if p.pool != nil {
			return p.pool, nil
		}
		return nil, fmt.Errorf("CA %s holds no PEM certificate", p.file)
	}
	p.pool, p.data = pool, data
	return pool, nil
}

func modTime(file string) time.Time {
	st, err := os.Stat(file)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}
