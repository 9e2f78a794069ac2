package enroll

import (
	"crypto"
	"crypto/x509"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/vigil-cctv/vigil/central/pki"
	agentv1 "github.com/vigil-cctv/vigil/proto/agent/v1"
	"github.com/vigil-cctv/vigil/proto/identity"
)

// FuzzEnroll drives the service with arbitrary requests, with or without a
// real token of district north. Beyond the token parser's and the CSR
// signer's own fuzzing, it pins how they compose: a refused request never
// spends the token, and an accepted one spends it and certifies the
// request's key for the token's district only.
func FuzzEnroll(f *testing.F) {
	db, err := bbolt.Open(filepath.Join(f.TempDir(), "central.db"), 0o600, &bbolt.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	tokens, err := NewTokens(db, nil)
	if err != nil {
		f.Fatal(err)
	}
	ca, _, err := pki.LoadOrCreate(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	svc := NewService(ca, tokens, 0, nil)
	csr := newAgent(f).csr
	f.Add(true, "", csr, "north")
	f.Add(true, "", csr, "south")
	f.Add(true, "", csr[:len(csr)-1], "")
	f.Add(false, "vigil-enroll-v1."+ca.Fingerprint()+".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", csr, "north")
	f.Fuzz(func(t *testing.T, useReal bool, tokenText string, csr []byte, district string) {
		real, _, err := tokens.Create("north", 0, ca.Fingerprint())
		if err != nil {
			t.Fatal(err)
		}
		if useReal {
			tokenText = real.String()
		}
		resp, err := svc.Enroll(t.Context(), &agentv1.EnrollRequest{Token: tokenText, Csr: csr, District: district})
		_, checkErr := tokens.check(real.Secret)
		spent := checkErr != nil
		if err != nil {
			if spent {
				t.Fatalf("refused (%v) but the token is spent", err)
			}
			return
		}
		if !useReal && tokenText != real.String() {
			t.Fatalf("enrolled with token %q", tokenText)
		}
		if !spent {
			t.Fatal("enrolled without spending the token")
		}
		if district != "" && district != "north" {
			t.Fatalf("enrolled for %q with a token of north", district)
		}
		cert, err := x509.ParseCertificate(resp.GetCertificate())
		if err != nil {
			t.Fatal(err)
		}
		req, err := x509.ParseCertificateRequest(csr)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := identity.DistrictFromCert(cert); err != nil || d != "north" || resp.GetDistrict() != "north" {
			t.Fatalf("district %q %v", d, err)
		}
		if eq, ok := req.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(cert.PublicKey) {
			t.Fatal("certificate is not for the request's key")
		}
	})
}
