package server

import (
	"crypto/tls"

	"github.com/vigil-cctv/vigil/proto/identity"
)

func pinned(fingerprint string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, VerifyPeerCertificate: identity.VerifyPinned(fingerprint)}
}
