package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

func cert(t *testing.T, uris ...*url.URL) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), URIs: uris}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func TestDistrictFromCert(t *testing.T) {
	if d, err := DistrictFromCert(cert(t, DistrictURI("north"))); err != nil || d != "north" {
		t.Fatalf("got %q %v", d, err)
	}
	bad := map[string][]*url.URL{
		"none":      nil,
		"two":       {DistrictURI("north"), DistrictURI("south")},
		"bad name":  {DistrictURI("../x")},
		"other uri": {{Scheme: "https", Host: "district", Path: "/north"}},
	}
	for name, uris := range bad {
		if _, err := DistrictFromCert(cert(t, uris...)); !errors.Is(err, ErrNoDistrict) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestToken(t *testing.T) {
	tok := Token{Fingerprint: strings.Repeat("ab", 32), Secret: strings.Repeat("A", 43)}
	got, err := ParseToken(" " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, s := range []string{"", "x", tok.String() + ".x", "vigil-enroll-v2." + tok.Fingerprint + "." + tok.Secret,
		"vigil-enroll-v1." + strings.Repeat("AB", 32) + "." + tok.Secret, "vigil-enroll-v1." + tok.Fingerprint + ".short",
		"vigil-enroll-v1." + tok.Fingerprint + "." + strings.Repeat("!", 43)} {
		if _, err := ParseToken(s); !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseToken(%q) = %v", s, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(Token{Fingerprint: strings.Repeat("0f", 32), Secret: strings.Repeat("z", 43)}.String())
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err == nil && tok.String() != strings.TrimSpace(s) {
			t.Fatalf("%q parsed as %+v", s, tok)
		}
	})
}
