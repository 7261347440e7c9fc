package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// adminUser is the static token user in system:masters.
const adminUser = "admin"

// Files of a PKI directory written by writePKI.
const (
	pkiCACert      = "ca.crt"
	pkiCAKey       = "ca.key"
	pkiServerCert  = "apiserver.crt"
	pkiServerKey   = "apiserver.key"
	pkiWebhookCert = "tekton-webhook.crt"
	pkiWebhookKey  = "tekton-webhook.key"
	pkiKubeletCert = "kubelet.crt"
	pkiKubeletKey  = "kubelet.key"
	pkiSAKey       = "sa.key"
	pkiSAPub       = "sa.pub"
	pkiTokens      = "tokens.csv"
)

// pki is what the apiserver and its clients share.
type pki struct {
	caPEM  []byte            // CA certificate, PEM
	tokens map[string]string // user -> bearer token
}

// writePKI writes a fresh CA, an apiserver serving certificate (SANs
// 127.0.0.1, localhost, kubernetes.default.svc), a serving certificate for
// Tekton's webhook (SAN 127.0.0.1), a service-account RSA key pair and a
// static token file into dir. users maps each extra token user to its
// groups; the admin user is always there, in system:masters.
func writePKI(dir string, users map[string][]string, now time.Time) (*pki, error) {
	for u, gs := range users {
		if u == adminUser {
			return nil, fmt.Errorf("token user %q is reserved", adminUser)
		}
		for _, s := range append([]string{u}, gs...) {
			if s == "" || strings.ContainsAny(s, ",\"\n\r") {
				return nil, fmt.Errorf("token user %q: empty name or one with a comma, quote or newline", u)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "cluster-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	srvDER, srvKeyDER, err := servingCert(ca, caKey, "kube-apiserver", now, "localhost", "kubernetes.default.svc")
	if err != nil {
		return nil, fmt.Errorf("create apiserver certificate: %w", err)
	}
	whDER, whKeyDER, err := servingCert(ca, caKey, "tekton-webhook", now)
	if err != nil {
		return nil, fmt.Errorf("create tekton-webhook certificate: %w", err)
	}

	kubeletDER, kubeletKeyDER, err := servingCert(ca, caKey, NodeName, now)
	if err != nil {
		return nil, fmt.Errorf("create kubelet certificate: %w", err)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}

	tokens := map[string]string{adminUser: token()}
	for u := range users {
		tokens[u] = token()
	}
	groups := map[string][]string{adminUser: {"system:masters"}}
	for u, g := range users {
		groups[u] = g
	}

	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	caPEM := pemBlock("CERTIFICATE", caDER)
	files := map[string][]byte{
		pkiCACert:      caPEM,
		pkiCAKey:       pemBlock("EC PRIVATE KEY", caKeyDER),
		pkiServerCert:  pemBlock("CERTIFICATE", srvDER),
		pkiServerKey:   pemBlock("EC PRIVATE KEY", srvKeyDER),
		pkiWebhookCert: pemBlock("CERTIFICATE", whDER),
		pkiWebhookKey:  pemBlock("EC PRIVATE KEY", whKeyDER),
		pkiKubeletCert: pemBlock("CERTIFICATE", kubeletDER),
		pkiKubeletKey:  pemBlock("EC PRIVATE KEY", kubeletKeyDER),
		pkiSAKey:       pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)),
		pkiSAPub:       pemBlock("PUBLIC KEY", saPub),
		pkiTokens:      []byte(tokenFile(tokens, groups)),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	return &pki{caPEM: caPEM, tokens: tokens}, nil
}

// servingCert returns a new serving certificate signed by ca for 127.0.0.1
// and dnsNames, and its EC private key, both DER.
func servingCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, now time.Time, dnsNames ...string) (cert, key []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     dnsNames,
	}
	if cert, err = x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey); err != nil {
		return nil, nil, err
	}
	if key, err = x509.MarshalECPrivateKey(k); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// tokenFile renders kube-apiserver's --token-auth-file: one line
// token,user,uid,"group1,group2" per user, sorted by user.
func tokenFile(tokens map[string]string, groups map[string][]string) string {
	users := make([]string, 0, len(tokens))
	for u := range tokens {
		users = append(users, u)
	}
	sort.Strings(users)
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s,%s,%s", tokens[u], u, u)
		if g := groups[u]; len(g) > 0 {
			fmt.Fprintf(&b, ",%q", strings.Join(g, ","))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// pemBlock encodes der as a PEM block of type typ.
func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// serial returns a random certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

// token returns a random bearer token.
func token() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
