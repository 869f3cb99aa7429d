package testcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a certificate authority made by the test, with the server
// certificate of the agents started WithTLS and a client certificate, as
// files: production Consul speaks HTTPS only and verifies its clients.
type PKI struct {
	dir                   string
	ca                    *x509.Certificate
	caKey                 *ecdsa.PrivateKey
	CA                    string // the CA certificate (PEM)
	ServerCert, ServerKey string // for server.dc1.consul, localhost and 127.0.0.1–9
	ClientCert, ClientKey string // a valid client certificate
}

// NewPKI makes a CA and its server and client certificates in a
// temporary directory; each certificate is valid for an hour.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{dir: t.TempDir()}
	p.CA, p.ca, p.caKey = newCA(t, p.dir, "repolock test CA")
	p.ServerCert, p.ServerKey = p.Issue(t, "server", time.Now().Add(time.Hour), true)
	p.ClientCert, p.ClientKey = p.Issue(t, "client", time.Now().Add(time.Hour), false)
	return p
}

// OtherCA is the certificate of another CA, which signed none of p's
// certificates: a client that trusts only it cannot verify the agent.
func (p *PKI) OtherCA(t testing.TB) string {
	t.Helper()
	file, _, _ := newCA(t, t.TempDir(), "another CA")
	return file
}

// Issue signs a certificate valid until notAfter (in the past for an
// expired one) and returns its certificate and key files; a server one
// names server.dc1.consul, localhost and 127.0.0.1 to 127.0.0.9.
func (p *PKI) Issue(t testing.TB, name string, notAfter time.Time, server bool) (cert, key string) {
	t.Helper()
	tmpl := &x509.Certificate{
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = []string{"server.dc1.consul", "localhost"}
		for i := 1; i <= 9; i++ { // every agent of a cluster has its own loopback address
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IPv4(127, 0, 0, byte(i)))
		}
	}
	der, k := sign(t, tmpl, name, notAfter, p.ca, p.caKey)
	base := filepath.Join(p.dir, name+"-"+tmpl.SerialNumber.String())
	return writePEM(t, base+".pem", "CERTIFICATE", der), writeKey(t, base+"-key.pem", k)
}

// sign fills tmpl's serial, subject and validity (from two hours ago, for
// clocks that differ, to notAfter), makes its key and signs it with
// parent's key, or with its own when parent is nil.
func sign(t testing.TB, tmpl *x509.Certificate, name string, notAfter time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber, tmpl.Subject = serial(t), pkix.Name{CommonName: name}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-2*time.Hour), notAfter
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, k
}

func newCA(t testing.TB, dir, name string) (file string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	tmpl := &x509.Certificate{IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, key := sign(t, tmpl, name, time.Now().Add(24*time.Hour), nil, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", der), cert, key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeKey(t testing.TB, path string, k *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, path, "EC PRIVATE KEY", der)
}

func writePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
