package cluster

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// Issuer is the iss claim of the cluster's service-account tokens
// (kube-apiserver --service-account-issuer).
const Issuer = "https://kubernetes.default.svc"

// SignToken signs claims with the cluster's service-account key, the way
// kube-apiserver signs the tokens it issues (RS256, its key id), so tests
// can make tokens the TokenRequest API will not, such as expired ones.
// claims must be a JSON object.
func (c *Cluster) SignToken(claims any) (string, error) {
	b, err := os.ReadFile(filepath.Join(c.runDir, runPKI, pkiSAKey))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("sign token: %s holds no PEM block", pkiSAKey)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signJWT(key, claims)
}

// signJWT returns the compact RS256 JWT of claims, with kube-apiserver's
// key id: the unpadded base64url SHA-256 of the public key's PKIX DER.
func signJWT(key *rsa.PrivateKey, claims any) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	kid := sha256.Sum256(der)
	header, err := json.Marshal(map[string]string{"alg": "RS256", "kid": base64.RawURLEncoding.EncodeToString(kid[:])})
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	signed := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	digest := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
