package consulclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/repolock/repolock/internal/testcluster"
)

// A Go HTTPS server that requires client certificates, as Consul's with
// verify_incoming: the probe reads its verdict on each certificate.
func TestTLSVerdict(t *testing.T) {
	pki := testcluster.NewPKI(t)
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, `"leader"`) }))
	serverCert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	host := srv.Listener.Addr().String()

	expiredCert, expiredKey := pki.Issue(t, "expired", time.Now().Add(-time.Minute), false)
	for _, c := range []struct {
		name      string
		cert, key string
		refused   bool
	}{
		{"a valid certificate", pki.ClientCert, pki.ClientKey, false},
		{"no certificate", "", "", true},
		{"an expired certificate", expiredCert, expiredKey, true},
	} {
		cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
		if c.cert != "" {
			pair, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		got := tlsVerdict(context.Background(), cfg, host)
		if (got != nil) != c.refused {
			t.Errorf("%s: verdict %v, want refused %t", c.name, got, c.refused)
		}
	}
	// A server that is not there: no verdict, the request's error stands.
	if got := tlsVerdict(context.Background(), &tls.Config{}, "127.0.0.1:1"); got != nil {
		t.Errorf("nothing listening: verdict %v, want none", got)
	}
}

func TestClosedEarly(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("write tcp: %w", syscall.EPIPE):                           true,
		fmt.Errorf("write tcp: %w", syscall.ECONNRESET):                      true,
		errors.New("Put \"x\": http2: client conn could not be established"): true,
		fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED):                     false,
		context.DeadlineExceeded:                                             false,
	} {
		if got := closedEarly(err); got != want {
			t.Errorf("closedEarly(%v) = %t, want %t", err, got, want)
		}
	}
}
