package s3

import (
	"errors"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config says where the bucket is and how to reach it.
type Config struct {
	// Endpoint is host[:port] of the S3 service, without a scheme.
	Endpoint string `json:"endpoint" yaml:"endpoint"`
	// Bucket must have Object Lock enabled; Open creates it so if missing.
	Bucket    string `json:"bucket" yaml:"bucket"`
	AccessKey string `json:"access_key" yaml:"access_key"`
	SecretKey string `json:"secret_key" yaml:"secret_key"`
	// TLS selects https. Footage crosses the network: leave plain http to
	// a MinIO on the loopback or a private link.
	TLS bool `json:"tls" yaml:"tls"`
	// Region is optional; when empty the client asks the service.
	Region string `json:"region" yaml:"region"`
}

// CheckAndSetDefaults returns a clear error for what is missing or wrong.
// There is nothing to default: every field either is required or is
// meaningful when empty.
func (c *Config) CheckAndSetDefaults() error {
	switch {
	case c.Endpoint == "":
		return errors.New("s3: config: endpoint is required (host:port of the S3 service)")
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("s3: config: endpoint %q: give host:port without a scheme, and set tls for https", c.Endpoint)
	case strings.ContainsAny(c.Endpoint, "/?# "):
		return fmt.Errorf("s3: config: endpoint %q: give host:port only, no path", c.Endpoint)
	case c.Bucket == "":
		return errors.New("s3: config: bucket is required")
	case c.AccessKey == "":
		return errors.New("s3: config: access key is required")
	case c.SecretKey == "":
		return errors.New("s3: config: secret key is required")
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return fmt.Errorf("s3: config: bucket %q: %w", c.Bucket, err)
	}
	return nil
}
