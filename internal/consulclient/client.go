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
// Everything else is consul/api's own client: the CONSUL_* environment,
// its TLS setup and its transport. A unix:// address gets consul/api's own
// HTTP client, without the rotation.
package consulclient

import (
	"crypto/tls"
	"net/http"
	"os"
	"strings"
	"sync"

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
	if conf.TokenFile != "" {
		hc.Transport = &tokenFile{path: conf.TokenFile, next: transport}
	}
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
