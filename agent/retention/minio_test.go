package retention

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vigil-cctv/vigil/proto/actions"
	"github.com/vigil-cctv/vigil/storage"
	"github.com/vigil-cctv/vigil/storage/index"
	"github.com/vigil-cctv/vigil/storage/s3"
	"github.com/vigil-cctv/vigil/storage/s3/miniotest"
)

// Holds and the sweeper against a real MinIO bucket with Object Lock: what
// the index decides, the store enforces, and what the sweeper deletes
// leaves nothing behind in a versioned bucket. One server serves every
// subtest, each in its own bucket.
func TestMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	tests := []struct {
		name string
		fn   func(*testing.T, *miniotest.Server)
	}{
		{"HeldObjectSurvivesEveryCallThenVanishesAfterRelease", testMinIOHeldThenReleased},
		{"RecordedIntoHeldSpanGetsLegalHold", testMinIORecordedIntoHeldSpan},
		{"StrayLegalHoldKeptAndAlarmed", testMinIOStrayLegalHold},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, srv) })
	}
}

// minioEnv is a fixture on an S3 store, with a raw client that bypasses
// the store to try what any other S3 client could.
type minioEnv struct {
	*fixture
	s3     *s3.Store
	raw    *minio.Client
	bucket string
}

func newMinIOEnv(t *testing.T, srv *miniotest.Server) *minioEnv {
	t.Helper()
	cfg := srv.Config(t)
	st, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("s3 open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	raw, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return &minioEnv{fixture: newFixture(t, st, nil), s3: st, raw: raw, bucket: cfg.Bucket}
}

// versions lists everything the bucket has under key (versions and delete
// markers of key, and of any key it is a prefix of: there should be none),
// bypassing the store.
func (e *minioEnv) versions(t testing.TB, key string) []minio.ObjectInfo {
	t.Helper()
	var vs []minio.ObjectInfo
	for obj := range e.raw.ListObjects(context.Background(), e.bucket, minio.ListObjectsOptions{Prefix: key, Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			t.Fatalf("list versions: %v", obj.Err)
		}
		vs = append(vs, obj)
	}
	return vs
}

// dataVersions are the versions of key that hold footage.
func (e *minioEnv) dataVersions(t testing.TB, key string) []minio.ObjectInfo {
	t.Helper()
	var out []minio.ObjectInfo
	for _, v := range e.versions(t, key) {
		if v.Key == key && !v.IsDeleteMarker {
			out = append(out, v)
		}
	}
	return out
}

// legalHold is MinIO's own answer for one version: on, or not.
func (e *minioEnv) legalHold(t testing.TB, key, version string) bool {
	t.Helper()
	st, err := e.raw.GetObjectLegalHold(context.Background(), e.bucket, key, minio.GetObjectLegalHoldOptions{VersionID: version})
	if err != nil {
		if code := minio.ToErrorResponse(err).Code; code == "NoSuchObjectLockConfiguration" || code == "ObjectLockConfigurationNotFoundError" {
			return false // never held
		}
		t.Fatalf("legal hold of %s version %s: %v", key, version, err)
	}
	return st != nil && *st == minio.LegalHoldEnabled
}

func (e *minioEnv) setRawLegalHold(t testing.TB, key, version string, on bool) {
	t.Helper()
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	if err := e.raw.PutObjectLegalHold(context.Background(), e.bucket, key, minio.PutObjectLegalHoldOptions{VersionID: version, Status: &status}); err != nil {
		t.Fatalf("raw legal hold %v on %s: %v", on, key, err)
	}
}

// assertIntact checks that the one data version of the segment is still
// there, unchanged and held by MinIO itself.
func (e *minioEnv) assertIntact(t *testing.T, after string, seg storage.Segment, version string) {
	t.Helper()
	dv := e.dataVersions(t, seg.Key)
	if len(dv) != 1 || dv[0].VersionID != version || dv[0].Size != seg.Bytes {
		t.Fatalf("after %s: data versions %+v, want only %s of %d bytes", after, dv, version, seg.Bytes)
	}
	if !e.legalHold(t, seg.Key, version) {
		t.Fatalf("after %s: version %s lost its legal hold", after, version)
	}
	if _, err := e.ix.Get(seg.ID); err != nil {
		t.Fatalf("after %s: index lost the held segment: %v", after, err)
	}
}

// (a) A hold applied through Holds.Apply puts the object beyond the reach
// of every call: the store's Delete and Put, and raw S3 calls by version
// id, with governance bypass, MinIO's force delete, the bulk delete API,
// even removing the bucket. A plain removal only hides it behind a delete
// marker. (b) After release, past expiry, one sweep leaves nothing of the
// key in the bucket: no version, no delete marker.
func testMinIOHeldThenReleased(t *testing.T, srv *miniotest.Server) {
	e := newMinIOEnv(t, srv)
	ctx := t.Context()
	seg := e.record(t, "gate", t0, time.Minute, day, 1000)
	free := e.record(t, "gate", t0.Add(time.Hour), time.Minute, day, 1000)
	n, err := e.holds.Apply(ctx, index.Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Minute),
		Authority: "court", Case: "c-1"})
	if err != nil || n != 1 {
		t.Fatalf("apply: %d %v", n, err)
	}
	if h, err := e.ix.Hold("h1"); err != nil || h.State != index.HoldApplied {
		t.Fatalf("hold state %q, %v; want applied", h.State, err)
	}
	dv := e.dataVersions(t, seg.Key)
	if len(dv) != 1 {
		t.Fatalf("%d data versions, want 1", len(dv))
	}
	version := dv[0].VersionID
	e.assertIntact(t, "apply", seg, version)

	if err := e.store.Delete(ctx, seg.Key); !errors.Is(err, storage.ErrHeld) {
		t.Fatalf("store Delete of a held object = %v, want ErrHeld", err)
	}
	e.assertIntact(t, "store Delete", seg, version)
	if err := e.store.Put(ctx, seg.Key, bytes.NewReader([]byte("x")), 1); !errors.Is(err, storage.ErrHeld) {
		t.Fatalf("store Put over a held object = %v, want ErrHeld", err)
	}
	e.assertIntact(t, "store Put", seg, version)

	raw := []struct {
		name string
		opts minio.RemoveObjectOptions
	}{
		{"RemoveObject by version id", minio.RemoveObjectOptions{VersionID: version}},
		{"RemoveObject by version id with governance bypass", minio.RemoveObjectOptions{VersionID: version, GovernanceBypass: true}},
		{"RemoveObject with MinIO's force delete", minio.RemoveObjectOptions{ForceDelete: true}},
		{"RemoveObject by version id with force delete and bypass", minio.RemoveObjectOptions{VersionID: version, ForceDelete: true, GovernanceBypass: true}},
	}
	for _, c := range raw {
		err := e.raw.RemoveObject(ctx, e.bucket, seg.Key, c.opts)
		if err == nil {
			t.Errorf("%s of a held object succeeded", c.name)
		} else {
			t.Logf("%s refused: %v", c.name, err)
		}
		e.assertIntact(t, c.name, seg, version)
	}
	// The bulk delete API (DeleteObjects), another server path.
	objs := make(chan minio.ObjectInfo, 1)
	objs <- minio.ObjectInfo{Key: seg.Key, VersionID: version}
	close(objs)
	refused := false
	for r := range e.raw.RemoveObjects(ctx, e.bucket, objs, minio.RemoveObjectsOptions{GovernanceBypass: true}) {
		if r.Err != nil {
			refused = true
			t.Logf("RemoveObjects refused: %v", r.Err)
		}
	}
	if !refused {
		t.Error("RemoveObjects of a held version reported no error")
	}
	e.assertIntact(t, "RemoveObjects", seg, version)
	if err := e.raw.RemoveBucketWithOptions(ctx, e.bucket, minio.RemoveBucketOptions{ForceDelete: true}); err == nil {
		t.Fatal("force removal of the bucket succeeded")
	}
	e.assertIntact(t, "RemoveBucket with force delete", seg, version)

	// A plain removal is allowed by S3, and only hides the footage behind a
	// delete marker: the held version stays.
	if err := e.raw.RemoveObject(ctx, e.bucket, seg.Key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("plain RemoveObject: %v", err)
	}
	e.assertIntact(t, "plain RemoveObject", seg, version)
	if vs := e.versions(t, seg.Key); len(vs) != 2 {
		t.Fatalf("want the data version and a delete marker, got %+v", vs)
	}

	// Long past expiry, the held segment is never even claimed.
	e.clock.Set(t0.Add(30 * day))
	if res := e.sweep(t); res.Deleted[ReasonRetention] != 1 || res.Failed != 0 {
		t.Fatalf("sweep while held: %+v, want only the free segment deleted", res)
	}
	if e.exists(t, free) {
		t.Fatal("the unheld segment was kept")
	}
	e.assertIntact(t, "sweep", seg, version)

	// (b) Released: one sweep, and nothing of the key is left.
	if n, err := e.holds.Release(ctx, "h1", "case closed"); err != nil || n != 1 {
		t.Fatalf("release: %d %v", n, err)
	}
	if e.legalHold(t, seg.Key, version) {
		t.Fatal("release left MinIO's legal hold on")
	}
	res := e.sweep(t)
	if res.Deleted[ReasonRetention] != 1 || res.Failed != 0 {
		t.Fatalf("sweep after release: %+v, want 1 deleted", res)
	}
	if vs := e.versions(t, seg.Key); len(vs) != 0 {
		t.Fatalf("after the sweep the bucket still has %d entries for the key: %+v", len(vs), vs)
	}
	for _, s := range []storage.Segment{seg, free} {
		if vs := e.versions(t, s.Key); len(vs) != 0 {
			t.Errorf("segment %s: %d versions or markers left", s.ID, len(vs))
		}
		if _, err := e.ix.Get(s.ID); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("segment %s still indexed: %v", s.ID, err)
		}
	}
	if e.alarm(AlarmDeletionFailed) != "" {
		t.Errorf("alarm raised: %s", e.alarm(AlarmDeletionFailed))
	}
}

// (c) A segment recorded into a held span after the hold was placed gets
// MinIO's legal hold as it is recorded; one outside the span does not.
func testMinIORecordedIntoHeldSpan(t *testing.T, srv *miniotest.Server) {
	e := newMinIOEnv(t, srv)
	ctx := t.Context()
	n, err := e.holds.Apply(ctx, index.Hold{ID: "h-future", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(2 * time.Hour)})
	if err != nil || n != 0 {
		t.Fatalf("apply over an empty span: %d %v", n, err)
	}
	inside := e.record(t, "gate", t0.Add(10*time.Minute), time.Minute, day, 500)
	outside := e.record(t, "gate", t0.Add(3*time.Hour), time.Minute, day, 500)
	other := e.record(t, "yard", t0.Add(10*time.Minute), time.Minute, day, 500)
	if !inside.Held() || inside.HeldBy[0] != "h-future" {
		t.Fatalf("segment recorded into the span not held in the index: %+v", inside.HeldBy)
	}
	if outside.Held() || other.Held() {
		t.Fatal("segments outside the hold are held")
	}
	dv := e.dataVersions(t, inside.Key)
	if len(dv) != 1 || !e.legalHold(t, inside.Key, dv[0].VersionID) {
		t.Fatalf("segment recorded into a held span has no MinIO legal hold (versions %+v)", dv)
	}
	if on, err := e.store.LegalHold(ctx, inside.Key); err != nil || !on {
		t.Fatalf("store LegalHold = %v, %v", on, err)
	}
	for _, s := range []storage.Segment{outside, other} {
		if dv := e.dataVersions(t, s.Key); len(dv) != 1 || e.legalHold(t, s.Key, dv[0].VersionID) {
			t.Fatalf("segment %s outside the hold: versions %+v or legal hold on", s.ID, dv)
		}
	}
	if err := e.store.Delete(ctx, inside.Key); !errors.Is(err, storage.ErrHeld) {
		t.Fatalf("store Delete = %v, want ErrHeld", err)
	}
	if err := e.raw.RemoveObject(ctx, e.bucket, inside.Key, minio.RemoveObjectOptions{VersionID: dv[0].VersionID, GovernanceBypass: true}); err == nil {
		t.Fatal("raw removal of the version succeeded")
	}
	e.clock.Set(t0.Add(30 * day))
	if res := e.sweep(t); res.Deleted[ReasonRetention] != 2 || res.Failed != 0 {
		t.Fatalf("sweep: %+v, want the 2 unheld deleted", res)
	}
	if !e.exists(t, inside) || e.exists(t, outside) || e.exists(t, other) {
		t.Fatal("wrong segments kept")
	}
	if len(e.dataVersions(t, inside.Key)) != 1 {
		t.Fatal("held version gone")
	}
}

// A legal hold left in the store on a segment whose index hold is gone (a
// fault, an index rebuilt after a loss, or a hand with the bucket's keys):
// the sweeper claims it, MinIO refuses, and the sweeper keeps the segment
// as held by a hold the index does not know (index.PlaceholderHold),
// raises AlarmUnknownHold and logs the refusal once. It is never retried
// by itself, even once the stray hold is lifted: the officer's way out is
// a hold placed and released over its span, after which one sweep removes
// every version.
func testMinIOStrayLegalHold(t *testing.T, srv *miniotest.Server) {
	e := newMinIOEnv(t, srv)
	ctx := t.Context()
	seg := e.record(t, "gate", t0, time.Minute, day, 1000)
	if _, err := e.holds.Apply(ctx, index.Hold{ID: "h1", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.holds.Release(ctx, "h1", "done"); err != nil {
		t.Fatal(err)
	}
	dv := e.dataVersions(t, seg.Key)
	if len(dv) != 1 || e.legalHold(t, seg.Key, dv[0].VersionID) {
		t.Fatalf("setup: versions %+v, want one without legal hold", dv)
	}
	version := dv[0].VersionID
	e.setRawLegalHold(t, seg.Key, version, true) // the fault
	got, err := e.ix.Get(seg.ID)
	if err != nil || got.Held() {
		t.Fatalf("setup: index %+v, %v; want unheld", got.HeldBy, err)
	}

	e.clock.Set(t0.Add(2 * day))
	for i := range 2 { // the refusal, then a sweep that leaves it alone
		res := e.sweep(t)
		if res.Deleted[ReasonRetention] != 0 {
			t.Fatalf("sweep %d deleted a segment MinIO holds: %+v", i, res)
		}
		a := e.alarm(AlarmUnknownHold)
		if !strings.HasPrefix(a, "1 segments are under a legal hold") {
			t.Fatalf("sweep %d: alarm %q, want one counting the segment", i, a)
		}
		got, err := e.ix.Get(seg.ID)
		if err != nil {
			t.Fatalf("sweep %d: index entry dropped: %v", i, err)
		}
		if len(got.HeldBy) != 1 || got.HeldBy[0] != index.PlaceholderHold {
			t.Fatalf("sweep %d: held by %v, want the placeholder", i, got.HeldBy)
		}
		if claims, err := e.ix.Claims(); err != nil || len(claims) != 0 {
			t.Fatalf("sweep %d: claims %+v, %v; want the segment given back", i, claims, err)
		}
		if dv := e.dataVersions(t, seg.Key); len(dv) != 1 || dv[0].VersionID != version {
			t.Fatalf("sweep %d: versions %+v", i, dv)
		}
	}
	entries, err := e.ix.JournalEntries(1, 100)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, en := range entries {
		switch en.Action {
		case actions.SegmentDeleteFailed:
			failed++
			if en.Segment != seg.ID {
				t.Errorf("failure logged for %s", en.Segment)
			}
		case actions.SegmentDeleted:
			t.Errorf("deletion logged while MinIO refused it: %+v", en)
		}
	}
	if failed != 1 {
		t.Errorf("%d refusals in the district log, want 1", failed)
	}

	// The stray hold lifted behind the agent's back: still kept.
	e.setRawLegalHold(t, seg.Key, version, false)
	if res := e.sweep(t); res.Deleted[ReasonRetention] != 0 || !e.exists(t, seg) {
		t.Fatalf("a segment kept for an unknown hold was deleted without a release: %+v", res)
	}
	// The way out: a hold over its span takes the placeholder's place,
	// sets MinIO's legal hold again, and its release lets it go.
	if n, err := e.holds.Apply(ctx, index.Hold{ID: "h2", District: "north", Cameras: []string{"gate"}, From: t0, To: t0.Add(time.Minute)}); err != nil || n != 1 {
		t.Fatalf("apply over the span: %d %v", n, err)
	}
	if !e.legalHold(t, seg.Key, version) {
		t.Fatal("the hold over the span did not set MinIO's legal hold")
	}
	if n, err := e.holds.Release(ctx, "h2", "stray hold resolved"); err != nil || n != 1 {
		t.Fatalf("release: %d %v", n, err)
	}
	res := e.sweep(t)
	if res.Failed != 0 || res.Deleted[ReasonRetention] != 1 {
		t.Fatalf("sweep after the release: %+v, want 1 deleted", res)
	}
	if vs := e.versions(t, seg.Key); len(vs) != 0 {
		t.Fatalf("%d versions or markers left: %+v", len(vs), vs)
	}
	if _, err := e.ix.Get(seg.ID); !errors.Is(err, index.ErrNotFound) {
		t.Fatalf("still indexed: %v", err)
	}
	if a := e.alarm(AlarmDeletionFailed); a != "" {
		t.Errorf("deletion alarm raised: %q", a)
	}
	if a := e.alarm(AlarmUnknownHold); a != "" {
		t.Errorf("%s still raised after the segment was deleted: %q", AlarmUnknownHold, a)
	}
}
