// Package consulclient builds repolock's Consul API clients, so that
// credentials replaced on disk during a run are used from then on:
// Vault-issued certificates and tokens are short-lived, backups long.
//
//   - The client certificate and key files are read at every TLS handshake
//     (tls.Config.GetClientCertificate), so every new connection presents
//     the certificate on disk then.
//   - The token file is read at every request: a token replaced on disk is
//     sent from the next request on. If the file cannot be read, or is
//     empty, the last token read is sent.
//
// A refusal of repolock's certificate reaches repolock as the agent's TLS
// alert, never as a network fault: in TLS 1.3 the agent judges the client
// certificate after the client's handshake is over, sends its alert and
// closes, so the request's write often fails first with a broken pipe or a
// reset, which would be retried for all of `wait`. After such a failure a
// probe handshake (tlsVerdict) reads the agent's verdict.
//
// Everything else is consul/api's own client: the CONSUL_* environment,
// its TLS setup and its transport. A unix:// address gets consul/api's own
// HTTP client, without the rotation.
package consulclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// New is api.NewClient on conf with the rotation above. conf is taken from
// api.DefaultConfig, with the caller's overrides on top.
func New(conf *api.Config) (*api.Client, error) {
	transport := conf.Transport
	if transport == nil {
		transport = api.DefaultConfig().Transport
	}
	hc, err := api.NewHttpClient(transport, conf.TLSConfig)
	if err != nil {
		return nil, err
	}
	if cert, key := conf.TLSConfig.CertFile, conf.TLSConfig.KeyFile; cert != "" && key != "" {
		tc := transport.TLSClientConfig.Clone() // never change a tls.Config another client may share
		transport.TLSClientConfig = tc
		tc.Certificates = nil
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, err
			}
			return &c, nil
		}
	}
	var rt http.RoundTripper = transport
	if transport.TLSClientConfig != nil {
		rt = &verdict{tls: transport.TLSClientConfig, next: rt}
	}
	if conf.TokenFile != "" {
		rt = &tokenFile{path: conf.TokenFile, next: rt}
	}
	hc.Transport = rt
	conf.HttpClient = hc
	return api.NewClient(conf)
}

// tokenFile sends the token in path with every request.
type tokenFile struct {
	path string
	next http.RoundTripper

	mu   sync.Mutex
	last string
}

func (t *tokenFile) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := t.read()
	if tok == "" {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context()) // a RoundTripper must not change its request
	r.Header.Set("X-Consul-Token", tok)
	return t.next.RoundTrip(r)
}

// read is the token in the file now, or the last one read when the file
// cannot be read or is empty (a rename in progress).
func (t *tokenFile) read() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, err := os.ReadFile(t.path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			t.last = tok
		}
	}
	return t.last
}

// verdict turns a broken pipe or reset on an HTTPS request into the
// agent's TLS alert, when a probe handshake shows the agent refusing the
// client certificate.
type verdict struct {
	tls  *tls.Config
	next http.RoundTripper
}

func (v *verdict) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.next.RoundTrip(req)
	if err == nil || req.URL.Scheme != "https" || !closedEarly(err) {
		return resp, err
	}
	if alert := tlsVerdict(req.Context(), v.tls, req.URL.Host); alert != nil {
		return nil, &verdictError{alert: alert, err: err}
	}
	return resp, err
}

// closedEarly reports whether err is the agent closing the connection
// under a request: what its TLS alert looks like when the alert was not
// read first.
func closedEarly(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(err.Error(), "http2: client conn could not be established")
}

// probeTimeout bounds a probe: the agent answers a handshake in
// milliseconds.
const probeTimeout = 2 * time.Second

// tlsVerdict dials host with cfg over HTTP/1.1, sends a request and reads
// the answer: the agent's TLS alert (a *net.OpError whose Op is "remote
// error"), or nil when the agent answers or the probe fails otherwise. A
// failed write does not end the probe: the alert is read from what the
// agent sent before it closed.
func tlsVerdict(ctx context.Context, cfg *tls.Config, host string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c := cfg.Clone()
	c.NextProtos = []string{"http/1.1"}
	d := tls.Dialer{Config: c}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return remoteAlert(err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	_, _ = conn.Write([]byte("GET /v1/status/leader HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"))
	_, err = bufio.NewReader(conn).ReadByte()
	return remoteAlert(err)
}

// remoteAlert is err when it is a TLS alert from the agent, else nil.
func remoteAlert(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return err
	}
	return nil
}

// verdictError is a failed request whose cause the probe found: the
// agent's alert, which callers classify as TLS, with the request's own
// error for the message.
type verdictError struct {
	alert error
	err   error
}

func (e *verdictError) Error() string { return e.err.Error() + ": " + e.alert.Error() }
func (e *verdictError) Unwrap() error { return e.alert }
