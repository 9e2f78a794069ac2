package miniotest_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-cctv/vigil/storage/s3/miniotest"
)

func TestBinaryFromEnv(t *testing.T) {
	t.Setenv("VIGIL_MINIO", filepath.Join(t.TempDir(), "no-minio"))
	if _, err := miniotest.Binary(t); err == nil || !strings.Contains(err.Error(), "VIGIL_MINIO") {
		t.Errorf("Binary with a missing $VIGIL_MINIO = %v, want an error naming it", err)
	}
}

// The server serves while its test runs and is gone when the test ends.
func TestStartAndCleanup(t *testing.T) {
	var endpoint string
	t.Run("server", func(t *testing.T) {
		srv := miniotest.Start(t)
		endpoint = srv.Endpoint
		if srv.AccessKey == "" || srv.SecretKey == "" {
			t.Error("empty credentials")
		}
		resp, err := http.Get("http://" + endpoint + "/minio/health/live")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("health/live = %s", resp.Status)
		}
		a, b := srv.Config(t), srv.Config(t)
		if a.Bucket == b.Bucket || a.Endpoint != endpoint {
			t.Errorf("Config = %+v then %+v, want fresh buckets on %s", a, b, endpoint)
		}
	})
	if resp, err := http.Get("http://" + endpoint + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Errorf("server at %s still answers after its test ended", endpoint)
	}
}
