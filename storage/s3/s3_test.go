package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/s3"
	"github.com/vigil-cctv/vigil/storage/s3/miniotest"
	"github.com/vigil-cctv/vigil/storage/storagetest"
)

func openStore(t *testing.T, srv *miniotest.Server) (*s3.Store, s3.Config) {
	t.Helper()
	cfg := srv.Config(t)
	s, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

func rawClient(t testing.TB, cfg s3.Config) *minio.Client {
	t.Helper()
	c, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// versions lists every version and delete marker of key, bypassing the store.
func versions(t testing.TB, c *minio.Client, bucket, key string) []minio.ObjectInfo {
	t.Helper()
	var vs []minio.ObjectInfo
	for obj := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatalf("list versions: %v", obj.Err)
		}
		if obj.Key == key {
			vs = append(vs, obj)
		}
	}
	return vs
}

// One MinIO server (about a second to start) serves every subtest, each in
// its own bucket.
func TestS3(t *testing.T) {
	srv := miniotest.Start(t)
	t.Run("Contract", func(t *testing.T) {
		storagetest.RunContract(t, func(t *testing.T) storage.ObjectStore {
			s, _ := openStore(t, srv)
			return s
		})
	})
	tests := []struct {
		name string
		fn   func(*testing.T, *miniotest.Server)
	}{
		{"DeleteLeavesNoVersion", testDeleteLeavesNoVersion},
		{"DeleteOfHiddenVersions", testDeleteOfHiddenVersions},
		{"OverwriteRemovesOldVersions", testOverwriteRemovesOldVersions},
		{"HoldIsObjectLock", testHoldIsObjectLock},
		{"WORMErrorIsErrHeld", testWORMErrorIsErrHeld},
		{"OpenRefusesBucketWithoutObjectLock", testOpenRefusesBucketWithoutObjectLock},
		{"OpenRefusesDefaultRetention", testOpenRefusesDefaultRetention},
		{"OpenExistingLockedBucket", testOpenExistingLockedBucket},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, srv) })
	}
}

const key = "d1/cam1/2026/01/02/1767312000000-0123456789abcdef.mp4"

// Delete must destroy the footage, not hide it behind a delete marker.
func testDeleteLeavesNoVersion(t *testing.T, srv *miniotest.Server) {
	s, cfg := openStore(t, srv)
	c := rawClient(t, cfg)

	// Several versions (written behind the store's back, as an older
	// agent or a crash between put and prune could) and a delete marker.
	for i := range 3 {
		data := storagetest.Data(uint64(i), 1000)
		if _, err := c.PutObject(t.Context(), cfg.Bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.RemoveObject(t.Context(), cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(t.Context(), cfg.Bucket, key, strings.NewReader("last"), 4, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(versions(t, c, cfg.Bucket, key)); n != 5 {
		t.Fatalf("setup: %d versions, want 5", n)
	}

	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if vs := versions(t, c, cfg.Bucket, key); len(vs) != 0 {
		t.Errorf("after Delete %d versions remain: %+v", len(vs), vs)
	}
}

// Only a delete marker left (a plain RemoveObject by someone): Delete
// removes it too, and the data versions behind it.
func testDeleteOfHiddenVersions(t *testing.T, srv *miniotest.Server) {
	s, cfg := openStore(t, srv)
	c := rawClient(t, cfg)
	storagetest.MustPut(t, s, key, []byte("footage"))
	if err := c.RemoveObject(t.Context(), cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat behind a delete marker = %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if vs := versions(t, c, cfg.Bucket, key); len(vs) != 0 {
		t.Errorf("after Delete %d versions remain", len(vs))
	}
}

// An overwrite leaves only the new version: replaced footage does not
// linger where List and retention cannot see it.
func testOverwriteRemovesOldVersions(t *testing.T, srv *miniotest.Server) {
	s, cfg := openStore(t, srv)
	c := rawClient(t, cfg)
	storagetest.MustPut(t, s, key, []byte("one"))
	storagetest.MustPut(t, s, key, []byte("two"))
	vs := versions(t, c, cfg.Bucket, key)
	if len(vs) != 1 || vs[0].Size != 3 || !vs[0].IsLatest {
		t.Errorf("after overwrite: versions %+v, want only the latest", vs)
	}
}

// The hold is the store's own Object Lock: even a raw client removing the
// version by id is refused, and the store's error says ErrHeld and keeps
// the service's words.
func testHoldIsObjectLock(t *testing.T, srv *miniotest.Server) {
	s, cfg := openStore(t, srv)
	c := rawClient(t, cfg)
	storagetest.MustPut(t, s, key, []byte("evidence"))
	// A second version, so the hold must reach more than the latest.
	if _, err := c.PutObject(t.Context(), cfg.Bucket, key, strings.NewReader("evidence2"), 9, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLegalHold(t.Context(), key, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.SetLegalHold(context.Background(), key, false) })
	vs := versions(t, c, cfg.Bucket, key)
	if len(vs) != 2 {
		t.Fatalf("%d versions, want 2", len(vs))
	}
	for _, v := range vs {
		st, err := c.GetObjectLegalHold(t.Context(), cfg.Bucket, key, minio.GetObjectLegalHoldOptions{VersionID: v.VersionID})
		if err != nil || *st != minio.LegalHoldEnabled {
			t.Errorf("version %s hold = %v, %v; want ON", v.VersionID, st, err)
		}
		err = c.RemoveObject(t.Context(), cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err == nil {
			t.Errorf("raw removal of held version %s succeeded", v.VersionID)
		}
	}
	err := s.Delete(t.Context(), key)
	if !errors.Is(err, storage.ErrHeld) {
		t.Fatalf("Delete = %v, want ErrHeld", err)
	}
	if n := len(versions(t, c, cfg.Bucket, key)); n != 2 {
		t.Errorf("refused Delete removed versions: %d left, want 2", n)
	}
}

// If a hold lands between the store's check and its removal, MinIO's WORM
// refusal is reported as ErrHeld, keeping the service's words.
func testWORMErrorIsErrHeld(t *testing.T, srv *miniotest.Server) {
	s, cfg := openStore(t, srv)
	c := rawClient(t, cfg)
	storagetest.MustPut(t, s, key, []byte("x"))
	vs := versions(t, c, cfg.Bucket, key)
	on, off := minio.LegalHoldEnabled, minio.LegalHoldDisabled
	if err := c.PutObjectLegalHold(t.Context(), cfg.Bucket, key, minio.PutObjectLegalHoldOptions{VersionID: vs[0].VersionID, Status: &on}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.PutObjectLegalHold(context.Background(), cfg.Bucket, key, minio.PutObjectLegalHoldOptions{VersionID: vs[0].VersionID, Status: &off})
	})
	err := s3.RemoveVersions(t.Context(), s, key)
	if !errors.Is(err, storage.ErrHeld) || !strings.Contains(err.Error(), "WORM") {
		t.Fatalf("removal of a held version = %v, want ErrHeld with MinIO's text", err)
	}
	if n := len(versions(t, c, cfg.Bucket, key)); n != 1 {
		t.Errorf("%d versions left, want 1", n)
	}
}

func testOpenRefusesBucketWithoutObjectLock(t *testing.T, srv *miniotest.Server) {
	cfg := srv.Config(t)
	c := rawClient(t, cfg)
	if err := c.MakeBucket(t.Context(), cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := s3.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "object lock is not enabled") {
		t.Errorf("Open of a bucket without object lock = %v, want a clear refusal", err)
	}
}

func testOpenRefusesDefaultRetention(t *testing.T, srv *miniotest.Server) {
	cfg := srv.Config(t)
	c := rawClient(t, cfg)
	if err := c.MakeBucket(t.Context(), cfg.Bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	mode, days, unit := minio.Governance, uint(30), minio.Days
	if err := c.SetObjectLockConfig(t.Context(), cfg.Bucket, &mode, &days, &unit); err != nil {
		t.Fatal(err)
	}
	_, err := s3.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "default retention") {
		t.Errorf("Open of a bucket with default retention = %v, want a clear refusal", err)
	}
}

func testOpenExistingLockedBucket(t *testing.T, srv *miniotest.Server) {
	s, cfg := openStore(t, srv)
	storagetest.MustPut(t, s, key, []byte("x"))
	s2, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if got, _ := storagetest.MustGet(t, s2, key); string(got) != "x" {
		t.Errorf("Get via second store = %q", got)
	}
}

func TestOpenUnreachable(t *testing.T) {
	cfg := s3.Config{Endpoint: "127.0.0.1:1", Bucket: "vigil", AccessKey: "a", SecretKey: "b"}
	ctx, cancel := context.WithTimeout(t.Context(), 5e9)
	defer cancel()
	if _, err := s3.Open(ctx, cfg); err == nil {
		t.Error("Open of an unreachable endpoint succeeded")
	}
}

func TestConfigCheck(t *testing.T) {
	good := s3.Config{Endpoint: "minio:9000", Bucket: "vigil-d1", AccessKey: "a", SecretKey: "b"}
	if err := good.CheckAndSetDefaults(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		modify func(*s3.Config)
		want   string
	}{
		{"no endpoint", func(c *s3.Config) { c.Endpoint = "" }, "endpoint is required"},
		{"scheme", func(c *s3.Config) { c.Endpoint = "https://minio:9000" }, "without a scheme"},
		{"path", func(c *s3.Config) { c.Endpoint = "minio:9000/bucket" }, "no path"},
		{"no bucket", func(c *s3.Config) { c.Bucket = "" }, "bucket is required"},
		{"bad bucket", func(c *s3.Config) { c.Bucket = "Vigil_Footage" }, "bucket"},
		{"no access key", func(c *s3.Config) { c.AccessKey = "" }, "access key is required"},
		{"no secret key", func(c *s3.Config) { c.SecretKey = "" }, "secret key is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.modify(&c)
			err := c.CheckAndSetDefaults()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckAndSetDefaults = %v, want an error about %q", err, tc.want)
			}
			if _, err := s3.Open(t.Context(), c); err == nil {
				t.Error("Open accepted the bad config")
			}
		})
	}
}

func BenchmarkPut(b *testing.B) {
	srv := miniotest.Start(b)
	s, err := s3.Open(b.Context(), srv.Config(b))
	if err != nil {
		b.Fatal(err)
	}
	data := storagetest.Data(1, 4<<20)
	b.SetBytes(int64(len(data)))
	i := 0
	for b.Loop() {
		k := fmt.Sprintf("d1/cam1/2026/01/02/%d-0123456789abcdef.mp4", i)
		i++
		if err := s.Put(b.Context(), k, bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
