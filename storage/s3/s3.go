// Package s3 is the object store on an S3 bucket with Object Lock (MinIO in
// distributed mode, or any S3 service that implements Object Lock).
//
// The bucket is versioned (Object Lock requires it), so deleting a key
// without a version id would only hide the footage behind a delete marker.
// Delete therefore removes every version, and legal holds are S3 Object Lock
// legal holds on every version: the service itself then refuses to destroy
// held footage, whatever a caller does.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/fs"
)

var _ storage.ObjectStore = (*Store)(nil)

// Store is an ObjectStore on one bucket.
type Store struct {
	client *minio.Client
	bucket string
}

// Open connects to the service, creates the bucket with Object Lock if it
// does not exist, and refuses a bucket without Object Lock or with a default
// retention (which would keep footage past its deletion time).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.TLS,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: open %s: %w", cfg.Endpoint, err)
	}
	s := &Store{client: client, bucket: cfg.Bucket}
	if err := s.ensureBucket(ctx, cfg.Region); err != nil {
		return nil, fmt.Errorf("s3: open bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	return s, nil
}

func (s *Store) ensureBucket(ctx context.Context, region string) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return err
	}
	if !exists {
		err := s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region, ObjectLocking: true})
		// Another agent may have created it meanwhile; the lock check
		// below decides whether it will do.
		if err != nil && errorCode(err) != "BucketAlreadyOwnedByYou" {
			return fmt.Errorf("create with object lock: %w", err)
		}
	}
	enabled, mode, _, _, err := s.client.GetObjectLockConfig(ctx, s.bucket)
	if err != nil && errorCode(err) != "ObjectLockConfigurationNotFoundError" {
		return fmt.Errorf("read object lock configuration: %w", err)
	}
	if err != nil || enabled != "Enabled" {
		return errors.New("object lock is not enabled on the bucket; legal holds need it and it cannot be turned on later on MinIO: use a new bucket (vigil creates it with object lock)")
	}
	if mode != nil && *mode != "" {
		return fmt.Errorf("the bucket has a default retention (%s): it would keep footage past its deletion time; remove the default retention rule", *mode)
	}
	return nil
}

// Bucket is the name of the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Put uploads the object. Putting a held key fails with ErrHeld; an
// overwrite removes the versions it replaces, so that replaced footage does
// not linger out of sight.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := fs.ValidateKey(key); err != nil {
		return fmt.Errorf("s3: put: %w", err)
	}
	if err := s.put(ctx, key, r, size); err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// S3 would accept the upload as a new version beside the held one:
	// the refusal is ours, so that both stores obey the same contract.
	old, err := s.versions(ctx, key)
	if err != nil {
		return err
	}
	if held, err := s.anyHeld(ctx, key, old); err != nil {
		return err
	} else if held {
		return storage.ErrHeld
	}
	info, err := s.client.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{})
	if err != nil {
		return withContext(ctx, err)
	}
	if len(old) == 0 || info.VersionID == "" {
		return nil
	}
	if err := s.removeVersions(ctx, key, info.VersionID); err != nil {
		return fmt.Errorf("remove replaced versions: %w", err)
	}
	return nil
}

// Get opens the latest version of the object.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := fs.ValidateKey(key); err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("s3: get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("s3: get %s: %w", key, err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, storage.ObjectInfo{}, fmt.Errorf("s3: get %s: %w", key, mapNotFound(ctx, err))
	}
	// GetObject is lazy: Stat makes the request and reports a missing key.
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, storage.ObjectInfo{}, fmt.Errorf("s3: get %s: %w", key, mapNotFound(ctx, err))
	}
	return obj, storage.ObjectInfo{Key: key, Size: st.Size, Modified: st.LastModified}, nil
}

// Stat returns the size and modification time of the latest version.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := fs.ValidateKey(key); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3: stat: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3: stat %s: %w", key, err)
	}
	st, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3: stat %s: %w", key, mapNotFound(ctx, err))
	}
	return storage.ObjectInfo{Key: key, Size: st.Size, Modified: st.LastModified}, nil
}

// Delete removes every version of the object, delete markers included, so
// that nothing of it remains in the bucket. If any version is held nothing
// is removed and the error is ErrHeld.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := fs.ValidateKey(key); err != nil {
		return fmt.Errorf("s3: delete: %w", err)
	}
	if err := s.delete(ctx, key); err != nil {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	vs, err := s.versions(ctx, key)
	if err != nil {
		return err
	}
	// Check first: removing the newest version, then failing on a held
	// older one, would leave the older footage as the visible object.
	if held, err := s.anyHeld(ctx, key, vs); err != nil {
		return err
	} else if held {
		return storage.ErrHeld
	}
	return s.removeVersions(ctx, key, "")
}

// removeVersions removes every version of key but keep, oldest first, so
// that an interruption leaves the latest version in place (and a retry
// finishes the job) rather than uncovering an older one.
func (s *Store) removeVersions(ctx context.Context, key, keep string) error {
	vs, err := s.versions(ctx, key)
	if err != nil {
		return err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		if v.VersionID == keep {
			continue
		}
		err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		if err == nil || isNotFound(err) {
			continue
		}
		if isWORM(err) {
			return fmt.Errorf("version %s: %w: %w", v.VersionID, storage.ErrHeld, err)
		}
		return fmt.Errorf("version %s: %w", v.VersionID, withContext(ctx, err))
	}
	return nil
}

// versions lists every version of exactly key, delete markers included,
// newest first (the order S3 lists them in).
func (s *Store) versions(ctx context.Context, key string) ([]minio.ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var vs []minio.ObjectInfo
	for obj := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:       key,
		Recursive:    true,
		WithVersions: true,
	}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list versions: %w", withContext(ctx, obj.Err))
		}
		if obj.Key == key {
			vs = append(vs, obj)
		}
	}
	// The iterator ends silently when the context is done.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	return vs, nil
}

// anyHeld reports whether any data version of key has its legal hold on.
func (s *Store) anyHeld(ctx context.Context, key string, vs []minio.ObjectInfo) (bool, error) {
	for _, v := range vs {
		if v.IsDeleteMarker {
			continue
		}
		status, err := s.client.GetObjectLegalHold(ctx, s.bucket, key, minio.GetObjectLegalHoldOptions{VersionID: v.VersionID})
		switch {
		case err == nil:
			if status != nil && *status == minio.LegalHoldEnabled {
				return true, nil
			}
		case isNoLegalHold(err):
			// Never held.
		case isNotFound(err):
			// Removed since listed.
		default:
			return false, fmt.Errorf("legal hold of version %s: %w", v.VersionID, withContext(ctx, err))
		}
	}
	return false, nil
}

// List calls fn for the latest version of each object under prefix, in
// lexical key order (the order S3 lists in). Keys that are not valid object
// keys (not written through this package) are skipped, as in the fs store.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list %q: %w", prefix, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("s3: list %q: %w", prefix, withContext(ctx, obj.Err))
		}
		if fs.ValidateKey(obj.Key) != nil {
			continue
		}
		if err := fn(storage.ObjectInfo{Key: obj.Key, Size: obj.Size, Modified: obj.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("s3: list %q: %w", prefix, err)
	}
	return nil
}

// SetLegalHold turns the Object Lock legal hold of every data version of
// the object on or off. A version hidden behind a delete marker is still
// footage, so it is held too. ErrNotFound if the key has no data version.
func (s *Store) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := fs.ValidateKey(key); err != nil {
		return fmt.Errorf("s3: set legal hold: %w", err)
	}
	if err := s.setLegalHold(ctx, key, on); err != nil {
		return fmt.Errorf("s3: set legal hold %s: %w", key, err)
	}
	return nil
}

func (s *Store) setLegalHold(ctx context.Context, key string, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	vs, err := s.versions(ctx, key)
	if err != nil {
		return err
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	found := false
	for _, v := range vs {
		if v.IsDeleteMarker {
			continue
		}
		err := s.client.PutObjectLegalHold(ctx, s.bucket, key, minio.PutObjectLegalHoldOptions{VersionID: v.VersionID, Status: &status})
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("version %s: %w", v.VersionID, withContext(ctx, err))
		}
		found = true
	}
	if !found {
		return storage.ErrNotFound
	}
	return nil
}

// LegalHold reports whether any version of the object is held: the state
// in which Delete is refused. Holds are set on every version, so this is
// the latest version's hold unless a SetLegalHold was interrupted.
func (s *Store) LegalHold(ctx context.Context, key string) (bool, error) {
	if err := fs.ValidateKey(key); err != nil {
		return false, fmt.Errorf("s3: legal hold: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("s3: legal hold %s: %w", key, err)
	}
	vs, err := s.versions(ctx, key)
	if err != nil {
		return false, fmt.Errorf("s3: legal hold %s: %w", key, err)
	}
	if !hasData(vs) {
		return false, fmt.Errorf("s3: legal hold %s: %w", key, storage.ErrNotFound)
	}
	held, err := s.anyHeld(ctx, key, vs)
	if err != nil {
		return false, fmt.Errorf("s3: legal hold %s: %w", key, err)
	}
	return held, nil
}

func hasData(vs []minio.ObjectInfo) bool {
	for _, v := range vs {
		if !v.IsDeleteMarker {
			return true
		}
	}
	return false
}

// Close releases nothing: the client keeps only idle connections.
func (s *Store) Close() error { return nil }

func errorCode(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

func isNotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NoSuchVersion":
		return true
	}
	return false
}

// isNoLegalHold is the answer for a version whose hold was never set.
func isNoLegalHold(err error) bool {
	switch errorCode(err) {
	case "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError":
		return true
	}
	return false
}

// isWORM recognises the refusal to remove a locked version: MinIO answers
// InvalidRequest "Object is WORM protected…", AWS AccessDenied mentioning
// object lock.
func isWORM(err error) bool {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	msg := strings.ToLower(resp.Message)
	return resp.Code == "ObjectLocked" ||
		strings.Contains(msg, "worm protected") ||
		strings.Contains(msg, "object lock") ||
		strings.Contains(msg, "legal hold")
}

func mapNotFound(ctx context.Context, err error) error {
	if isNotFound(err) {
		return storage.ErrNotFound
	}
	return withContext(ctx, err)
}

// withContext makes a failure caused by the caller's context report it,
// whatever shape the client gave the error.
func withContext(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}
