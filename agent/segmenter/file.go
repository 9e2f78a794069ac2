package segmenter

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/vigil-cctv/vigil/agent/media"
)

// Spool file suffixes: a ".part" file is being written (or was, when the
// agent crashed); a ".mp4" file is complete and waits for upload.
const (
	PartSuffix     = ".mp4.part"
	CompleteSuffix = ".mp4"
)

// fragmentTarget is how much video one fMP4 fragment holds at most. Each
// fragment is fsynced, so it is also the most footage a power cut can take.
const fragmentTarget = time.Second

// segmentFile writes one segment as fragmented MP4 into the spool: the init
// section (ftyp+moov), then one moof+mdat fragment per GOP or second.
type segmentFile struct {
	path   string
	f      *os.File
	hash   hash.Hash
	bytes  int64
	params *media.Params
	codec  fmp4.Codec

	id        string
	start     time.Time // wall clock, no monotonic reading
	startMono time.Time // same instant with its monotonic reading
	firstDTS  int64
	seq       uint32

	held    *media.AccessUnit // last unit, waiting for the next DTS to know its duration
	pending []*fmp4.Sample
	pendDTS int64 // DTS of pending[0]
	lastDTS int64
	lastDur int64
	samples int
	buf     seekablebuffer.Buffer
}

// createSegmentFile starts a segment whose first access unit is first,
// which must be a keyframe.
func createSegmentFile(dir, id string, first *media.AccessUnit) (*segmentFile, error) {
	if !first.Keyframe {
		return nil, errors.New("segment must start with a keyframe")
	}
	// Millisecond precision, as in the object key, so a segment recovered
	// from its file name has the same start.
	start := time.UnixMilli(first.Received.UnixMilli()).UTC()
	path := filepath.Join(dir, spoolFileName(start, id, true))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sf := &segmentFile{
		path: path, f: f, hash: sha256.New(), params: first.Params,
		id: id, start: start, startMono: first.Received, firstDTS: first.DTS,
	}
	switch first.Params.Codec {
	case media.H264:
		sf.codec = &fmp4.CodecH264{SPS: first.Params.SPS, PPS: first.Params.PPS}
	case media.H265:
		sf.codec = &fmp4.CodecH265{VPS: first.Params.VPS, SPS: first.Params.SPS, PPS: first.Params.PPS}
	default:
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("unsupported codec %q", first.Params.Codec)
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: media.ClockRate, Codec: sf.codec}}}
	if err := init.Marshal(&sf.buf); err != nil {
		sf.abort()
		return nil, fmt.Errorf("segment init: %w", err)
	}
	if err := sf.flushBuf(); err != nil {
		sf.abort()
		return nil, err
	}
	sf.held = first
	return sf, nil
}

// write adds an access unit of the same stream, in DTS order.
func (sf *segmentFile) write(au *media.AccessUnit) error {
	if err := sf.commitHeld(au.DTS - sf.held.DTS); err != nil {
		return err
	}
	// Fragment at each keyframe, or when a fragment holds a second already.
	if len(sf.pending) > 0 && (au.Keyframe || au.DTS-sf.pendDTS >= media.Ticks(fragmentTarget)) {
		if err := sf.flushFragment(); err != nil {
			return err
		}
	}
	sf.held = au
	return nil
}

// commitHeld turns the held unit into a pending sample of the given duration.
func (sf *segmentFile) commitHeld(dur int64) error {
	au := sf.held
	if dur <= 0 {
		dur = 1
	}
	s := &fmp4.Sample{Duration: uint32(dur)}
	var err error
	if sf.params.Codec == media.H265 {
		err = s.FillH265(int32(au.PTS-au.DTS), au.NALUs)
	} else {
		err = s.FillH264(int32(au.PTS-au.DTS), au.NALUs)
	}
	if err != nil {
		return fmt.Errorf("segment sample: %w", err)
	}
	s.IsNonSyncSample = !au.Keyframe
	if len(sf.pending) == 0 {
		sf.pendDTS = au.DTS
	}
	sf.pending = append(sf.pending, s)
	sf.lastDTS, sf.lastDur = au.DTS, dur
	sf.samples++
	return nil
}

// flushFragment writes the pending samples as one fragment and fsyncs it.
func (sf *segmentFile) flushFragment() error {
	sf.seq++
	part := fmp4.Part{
		SequenceNumber: sf.seq,
		Tracks: []*fmp4.PartTrack{{
			ID:       1,
			BaseTime: uint64(sf.pendDTS - sf.firstDTS),
			Samples:  sf.pending,
		}},
	}
	if err := part.Marshal(&sf.buf); err != nil {
		return fmt.Errorf("segment fragment: %w", err)
	}
	sf.pending = sf.pending[:0]
	if err := sf.flushBuf(); err != nil {
		return err
	}
	if err := sf.f.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", sf.path, err)
	}
	return nil
}

func (sf *segmentFile) flushBuf() error {
	b := sf.buf.Bytes()
	if _, err := sf.f.Write(b); err != nil {
		return fmt.Errorf("spool: write %s: %w", sf.path, err)
	}
	sf.hash.Write(b)
	sf.bytes += int64(len(b))
	sf.buf.Reset()
	// seekablebuffer keeps its own position: rewind it with the contents.
	if _, err := sf.buf.Seek(0, 0); err != nil {
		return err
	}
	return nil
}

// elapsed is the stream time covered so far, including the held unit.
func (sf *segmentFile) elapsed() time.Duration {
	return media.TicksDuration(sf.held.DTS - sf.firstDTS)
}

// finish writes the last fragment, fsyncs and renames the file to its
// complete name. The last unit's duration is taken to be the previous one's.
func (sf *segmentFile) finish() (*Finished, error) {
	dur := sf.lastDur
	if dur == 0 {
		dur = media.Ticks(40 * time.Millisecond)
	}
	// On failure the .part file stays: the caller salvages its complete
	// fragments with RecoverFile rather than losing them.
	if err := sf.commitHeld(dur); err != nil {
		sf.f.Close()
		return nil, err
	}
	if err := sf.flushFragment(); err != nil {
		sf.f.Close()
		return nil, err
	}
	if err := sf.f.Close(); err != nil {
		return nil, fmt.Errorf("spool: close %s: %w", sf.path, err)
	}
	done := sf.path[:len(sf.path)-len(PartSuffix)] + CompleteSuffix
	if err := os.Rename(sf.path, done); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(filepath.Dir(done)); err != nil {
		return nil, err
	}
	span := media.TicksDuration(sf.lastDTS + sf.lastDur - sf.firstDTS)
	return &Finished{
		Path:    done,
		ID:      sf.id,
		Start:   sf.start,
		End:     sf.start.Add(span),
		Bytes:   sf.bytes,
		SHA256:  hex.EncodeToString(sf.hash.Sum(nil)),
		Codec:   string(sf.params.Codec),
		Samples: sf.samples,
	}, nil
}

// spoolFileName is "<start-unix-ms>-<id>.mp4", with ".part" while written.
func spoolFileName(start time.Time, id string, partial bool) string {
	if partial {
		return fmt.Sprintf("%d-%s%s", start.UnixMilli(), id, PartSuffix)
	}
	return fmt.Sprintf("%d-%s%s", start.UnixMilli(), id, CompleteSuffix)
}

// abort closes and removes a file whose init section could not be written:
// it holds no footage.
func (sf *segmentFile) abort() {
	sf.f.Close()
	os.Remove(sf.path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	return nil
}
