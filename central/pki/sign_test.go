package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-cctv/vigil/proto/identity"
)

// TestSignAgentIgnoresRequestedNames: whatever a request asks for, the
// certificate names the district given by the caller (from the token) and
// nothing else.
func TestSignAgentIgnoresRequestedNames(t *testing.T) {
	ca := mustCA(t)
	key := mustKey(t)
	csr := mustCSR(t, key, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"central"}},
		DNSNames:       []string{"central.example", "localhost"},
		IPAddresses:    []net.IP{net.IPv4(127, 0, 0, 1)},
		EmailAddresses: []string{"root@example.org"},
		URIs:           []*url.URL{identity.DistrictURI("south")},
	})
	der, err := ca.SignAgent(csr, "north", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParse(t, der)
	if d, err := identity.DistrictFromCert(cert); err != nil || d != "north" {
		t.Errorf("district %q %v", d, err)
	}
	if len(cert.URIs) != 1 || len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) != 0 {
		t.Errorf("names: %v %v %v %v", cert.URIs, cert.DNSNames, cert.IPAddresses, cert.EmailAddresses)
	}
	if cert.Subject.CommonName != "agent:north" {
		t.Errorf("CN %q", cert.Subject.CommonName)
	}
	if cert.IsCA || !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("IsCA=%v ExtKeyUsage=%v", cert.IsCA, cert.ExtKeyUsage)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("not the request's key")
	}
	if err := identity.VerifyLeaf(cert, ca.cert, x509.ExtKeyUsageClientAuth); err != nil {
		t.Error(err)
	}
	// An agent certificate cannot serve as central.
	if err := identity.VerifyLeaf(cert, ca.cert, x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("agent certificate usable as a server certificate")
	}
	if got := cert.NotAfter.Sub(time.Now()); got > time.Hour || got < 59*time.Minute {
		t.Errorf("validity %v", got)
	}
	if cert.SerialNumber.BitLen() < 100 {
		t.Errorf("serial of %d bits", cert.SerialNumber.BitLen())
	}
	again := mustParse(t, must(ca.SignAgent(csr, "north", 0)))
	if again.SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Error("serial repeated")
	}
	if got := again.NotAfter.Sub(time.Now()); got < DefaultAgentValidity-time.Hour {
		t.Errorf("default validity %v", got)
	}
	long := mustParse(t, must(ca.SignAgent(csr, "north", 20*365*day)))
	if !long.NotAfter.Equal(ca.cert.NotAfter) {
		t.Errorf("certificate outlives the CA: %v > %v", long.NotAfter, ca.cert.NotAfter)
	}
}

func must(der []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return der
}

func TestSignAgentRefuses(t *testing.T) {
	ca := mustCA(t)
	good := mustCSR(t, mustKey(t), nil)
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 0xff // in the signature
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)

	cases := []struct {
		name     string
		csr      []byte
		district string
		validity time.Duration
		badCSR   bool
		want     string
	}{
		{"garbage", []byte("not a request"), "north", 0, true, "bad certificate request"},
		{"empty", nil, "north", 0, true, "bad certificate request"},
		{"signature does not match the key", tampered, "north", 0, true, "signature"},
		{"RSA 1024", mustCSR(t, rsaSmall, nil), "north", 0, true, "RSA key of 1024 bits"},
		{"Ed25519", mustCSR(t, edKey, nil), "north", 0, true, "ed25519.PublicKey keys are not accepted"},
		{"bad district", good, "../north", 0, false, "district id"},
		{"no district", good, "", 0, false, "district id"},
		{"negative validity", good, "north", -time.Hour, false, "negative validity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			der, err := ca.SignAgent(c.csr, c.district, c.validity)
			if err == nil || der != nil {
				t.Fatalf("signed: %v", err)
			}
			if errors.Is(err, ErrBadCSR) != c.badCSR || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v (ErrBadCSR %v), want %q", err, errors.Is(err, ErrBadCSR), c.want)
			}
		})
	}
}

func TestSignAgentRSA2048(t *testing.T) {
	ca := mustCA(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignAgent(mustCSR(t, key, nil), "north", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mustParse(t, der).PublicKey.(*rsa.PublicKey); !ok {
		t.Fatal("not the RSA key")
	}
}

// FuzzSignAgent: a certificate request is outside input. Whatever the bytes,
// SignAgent either refuses them or issues a certificate that names exactly
// the given district, for client authentication only, for the request's
// own key, under this CA.
func FuzzSignAgent(f *testing.F) {
	ca := mustCA(f)
	key := mustKey(f)
	f.Add(mustCSR(f, key, nil))
	f.Add(mustCSR(f, key, &x509.CertificateRequest{DNSNames: []string{"x"}, URIs: []*url.URL{identity.DistrictURI("south")}}))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, csr []byte) {
		der, err := ca.SignAgent(csr, "north", time.Hour)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("refused without ErrBadCSR: %v", err)
			}
			return
		}
		req, err := x509.ParseCertificateRequest(csr)
		if err != nil || req.CheckSignature() != nil {
			t.Fatalf("signed a request that does not check: %v", err)
		}
		cert := mustParse(t, der)
		if d, err := identity.DistrictFromCert(cert); err != nil || d != "north" {
			t.Fatalf("district %q %v", d, err)
		}
		if len(cert.URIs) != 1 || len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) != 0 || cert.IsCA {
			t.Fatalf("names or CA flag leaked from the request: %+v", cert)
		}
		if !publicKeysEqual(cert.PublicKey, req.PublicKey) {
			t.Fatal("not the request's key")
		}
		if _, isECDSA := req.PublicKey.(*ecdsa.PublicKey); !isECDSA {
			if k, isRSA := req.PublicKey.(*rsa.PublicKey); !isRSA || k.N.BitLen() < 2048 {
				t.Fatalf("accepted a %T key", req.PublicKey)
			}
		}
		if err := identity.VerifyLeaf(cert, ca.cert, x509.ExtKeyUsageClientAuth); err != nil {
			t.Fatal(err)
		}
	})
}
