package segmenter

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/vigil-cctv/vigil/agent/media"
)

// maxBox bounds one top-level box read into memory: a fragment holds about
// a second of video, so anything larger is corruption, not footage.
const maxBox = 64 << 20

// maxDuration is the longest segment Probe believes: segments are at most
// minutes long, and an absurd span would make the index scan every listing
// of the camera from that segment on.
const maxDuration = time.Hour

// Info is what Probe learns from a segment file.
type Info struct {
	Codec string
	// Duration is the sum of the sample durations of the complete fragments.
	Duration time.Duration
	Samples  int
	// ValidSize is the length of the prefix made of the init section and
	// complete fragments; a crash may leave garbage after it.
	ValidSize int64
	// Complete is true when the whole input is valid (ValidSize == size).
	Complete bool
	// SHA256 is the hex digest of the valid prefix.
	SHA256 string
}

// Probe's errors other than I/O errors.
var (
	// ErrNoFootage means the file holds no complete fragment: nothing
	// playable, nothing lost by discarding it.
	ErrNoFootage = errors.New("segment holds no complete fragment")
	// ErrCorrupt means the data is not a segment this package could have
	// written. Unlike an I/O error, trying again will not help.
	ErrCorrupt = errors.New("not a playable segment")
)

// Probe reads a fragmented MP4 segment as written by this package: the init
// section, then moof+mdat fragments. It tolerates a truncated or garbled
// tail (the result of a crash), reports how much of the file is valid, and
// hashes that part, in one pass.
func Probe(r io.ReaderAt, size int64) (Info, error) {
	var (
		info      Info
		off       int64
		init      *fmp4.Init
		moof      []byte
		sawFtyp   bool
		timescale uint32
		end       uint64 // end of the last sample, in timescale units
		h         = sha256.New()
	)
	for off < size {
		typ, boxSize, err := readBoxHeader(r, off, size)
		if err != nil {
			break // a torn header: everything before off is what is valid
		}
		switch {
		case typ == "ftyp" && off == 0:
			buf, err := readBox(r, off, boxSize)
			if err != nil {
				return info, err
			}
			h.Write(buf)
			sawFtyp = true
		case typ == "moov" && sawFtyp && init == nil:
			buf, err := readBox(r, off, boxSize)
			if err != nil {
				return info, err
			}
			var in fmp4.Init
			if err := in.Unmarshal(bytes.NewReader(buf)); err != nil {
				return info, fmt.Errorf("%w: init section: %v", ErrCorrupt, err)
			}
			if len(in.Tracks) != 1 || in.Tracks[0].TimeScale == 0 {
				return info, fmt.Errorf("%w: %d tracks, want 1 video track", ErrCorrupt, len(in.Tracks))
			}
			switch in.Tracks[0].Codec.(type) {
			case *fmp4.CodecH264:
				info.Codec = string(media.H264)
			case *fmp4.CodecH265:
				info.Codec = string(media.H265)
			default:
				return info, fmt.Errorf("%w: unsupported codec %T", ErrCorrupt, in.Tracks[0].Codec)
			}
			init = &in
			timescale = in.Tracks[0].TimeScale
			h.Write(buf)
			info.ValidSize = off + boxSize
		case typ == "moof" && init != nil && moof == nil:
			buf, err := readBox(r, off, boxSize)
			if err != nil {
				return finishInfo(info, size, end, timescale, h)
			}
			moof = buf
		case typ == "mdat" && moof != nil:
			mdat, err := readBox(r, off, boxSize)
			if err != nil {
				return finishInfo(info, size, end, timescale, h)
			}
			var parts fmp4.Parts
			if err := parts.Unmarshal(append(moof, mdat...)); err != nil {
				return finishInfo(info, size, end, timescale, h)
			}
			for _, p := range parts {
				for _, t := range p.Tracks {
					e := t.BaseTime
					for _, smp := range t.Samples {
						e += uint64(smp.Duration)
						info.Samples++
					}
					end = max(end, e)
				}
			}
			h.Write(moof)
			h.Write(mdat)
			moof = nil
			info.ValidSize = off + boxSize
		default:
			if init == nil {
				return info, fmt.Errorf("%w: unexpected %q box at %d", ErrCorrupt, typ, off)
			}
			return finishInfo(info, size, end, timescale, h)
		}
		off += boxSize
	}
	if init == nil {
		if startsLikeSegment(r, size) {
			// Torn inside the init section: the writer died before any
			// footage reached the file.
			return info, ErrNoFootage
		}
		return info, fmt.Errorf("%w: no init section", ErrCorrupt)
	}
	return finishInfo(info, size, end, timescale, h)
}

// startsLikeSegment reports whether the data is too short to hold anything
// or begins with an ftyp box header, as every file this package writes does.
func startsLikeSegment(r io.ReaderAt, size int64) bool {
	if size < 8 {
		return true
	}
	var h [8]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return false
	}
	return string(h[4:8]) == "ftyp"
}

func finishInfo(info Info, size int64, end uint64, timescale uint32, h hash.Hash) (Info, error) {
	info.Complete = info.ValidSize == size
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	if info.Samples == 0 {
		return info, ErrNoFootage
	}
	// Seconds and remainder apart: end * 1e9 would overflow past 57 hours.
	secs, rem := end/uint64(timescale), end%uint64(timescale)
	if secs >= uint64(maxDuration/time.Second) {
		return info, fmt.Errorf("%w: %d s of samples, longer than any segment", ErrCorrupt, secs)
	}
	info.Duration = time.Duration(secs)*time.Second + time.Duration(rem*uint64(time.Second)/uint64(timescale))
	return info, nil
}

func readBoxHeader(r io.ReaderAt, off, size int64) (string, int64, error) {
	var h [16]byte
	if size-off < 8 {
		return "", 0, io.ErrUnexpectedEOF
	}
	if _, err := r.ReadAt(h[:8], off); err != nil {
		return "", 0, err
	}
	boxSize := int64(binary.BigEndian.Uint32(h[:4]))
	typ := string(h[4:8])
	hdr := int64(8)
	if boxSize == 1 {
		if size-off < 16 {
			return "", 0, io.ErrUnexpectedEOF
		}
		if _, err := r.ReadAt(h[8:16], off+8); err != nil {
			return "", 0, err
		}
		boxSize = int64(binary.BigEndian.Uint64(h[8:16]))
		hdr = 16
	}
	if boxSize < hdr || boxSize > size-off {
		return "", 0, io.ErrUnexpectedEOF
	}
	return typ, boxSize, nil
}

func readBox(r io.ReaderAt, off, n int64) ([]byte, error) {
	if n > maxBox {
		return nil, fmt.Errorf("%w: box of %d bytes at %d is too large", ErrCorrupt, n, off)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, off); err != nil {
		return nil, err
	}
	return buf, nil
}

// SpoolName parses a spool file name "<start-unix-ms>-<id>.mp4[.part]".
func SpoolName(path string) (start time.Time, id string, partial bool, err error) {
	name := filepath.Base(path)
	base, partial := strings.CutSuffix(name, PartSuffix)
	if !partial {
		var ok bool
		if base, ok = strings.CutSuffix(name, CompleteSuffix); !ok {
			return time.Time{}, "", false, fmt.Errorf("%w: spool file name %q", ErrCorrupt, name)
		}
	}
	msText, id, ok := strings.Cut(base, "-")
	ms, perr := strconv.ParseInt(msText, 10, 64)
	if !ok || perr != nil || ms <= 0 || len(id) != 16 {
		return time.Time{}, "", false, fmt.Errorf("%w: spool file name %q", ErrCorrupt, name)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return time.Time{}, "", false, fmt.Errorf("%w: spool file name %q", ErrCorrupt, name)
	}
	return time.UnixMilli(ms).UTC(), id, partial, nil
}

// RecoverFile turns a spool file left by a previous run into a finished
// segment. A ".part" file (the agent died while writing it) is cut back to
// its last complete fragment and renamed complete; a ".mp4" file is
// described again. A file without any complete fragment holds no footage
// and is removed; then RecoverFile returns (nil, nil).
func RecoverFile(path string) (*Finished, error) {
	start, id, partial, err := SpoolName(path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	info, err := Probe(f, st.Size())
	if errors.Is(err, ErrNoFootage) {
		f.Close()
		if rerr := os.Remove(path); rerr != nil {
			return nil, fmt.Errorf("spool: remove empty %s: %w", path, rerr)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %s: %w", filepath.Base(path), err)
	}
	if !info.Complete {
		if err := f.Truncate(info.ValidSize); err != nil {
			return nil, fmt.Errorf("spool: truncate %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("spool: sync %s: %w", path, err)
		}
	}
	done := path
	if partial {
		done = strings.TrimSuffix(path, PartSuffix) + CompleteSuffix
		if err := os.Rename(path, done); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		if err := syncDir(filepath.Dir(done)); err != nil {
			return nil, err
		}
	}
	return &Finished{
		Path:      done,
		ID:        id,
		Start:     start,
		End:       start.Add(info.Duration),
		Bytes:     info.ValidSize,
		SHA256:    info.SHA256,
		Codec:     info.Codec,
		Samples:   info.Samples,
		Recovered: partial,
	}, nil
}
