package motion

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vigil-cctv/vigil/agent/media"
)

// queueDepth is how many access units may wait for ffmpeg: about 4 s at
// 25 fps, enough to ride over a scheduling hiccup.
const queueDepth = 100

// pendingTagsSlack is how many more tags than its queue holds a decoder
// keeps for frames ffmpeg has not returned (those written, in the pipes and
// in ffmpeg): a decoder that swallows units must not grow memory forever,
// and one that is merely behind must not lose the tags of its frames.
const pendingTagsSlack = 3 * queueDepth

// frameTag travels with an access unit through ffmpeg and comes back with
// the frame decoded from it (ffmpeg returns one frame per unit, in order).
type frameTag struct {
	at  time.Time // the unit's arrival time
	seq uint64    // the detector's number for the unit
	gop uint64    // the detector's number for the unit's GOP
	key bool
	// report is false for a unit decoded only because later ones need it,
	// whose verdict was already given.
	report bool
	// The hybrid detector's flags: probe marks a keyframe decoded to decide
	// what else to decode; fresh the first frame analysed after frames
	// that were not.
	probe, fresh bool
}

type fedUnit struct {
	au  *media.AccessUnit
	tag frameTag
}

// decoder is one ffmpeg process turning access units into small gray
// frames.
type decoder struct {
	cmd   *exec.Cmd
	queue chan fedUnit
	done  chan struct{}

	mu   sync.Mutex
	tags []frameTag // of units fed, not yet matched to a frame
	busy bool       // a frame is being handed to onFrame
}

// decoderConfig says how to start a decoder and where its frames go.
type decoderConfig struct {
	ffmpeg string
	params *media.Params
	depth  int
	// onFrame is called, on the decoder's reader goroutine, for each frame
	// in order; frame is only valid during the call.
	onFrame func(frame []byte, tag frameTag)
	// onExit is called once when ffmpeg has exited, with its last words.
	onExit func(d *decoder, msg string, err error)
}

// startDecoder starts ffmpeg and the goroutines feeding and reading it,
// counted in wg; they stop when ctx ends or the decoder is stopped.
func startDecoder(ctx context.Context, wg *sync.WaitGroup, c decoderConfig) (*decoder, error) {
	demuxer := "h264"
	if c.params.Codec == media.H265 {
		demuxer = "hevc"
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-threads", "1",
		// No -fflags nobuffer: it makes ffmpeg drop the first GOP, which
		// would shift every frame's time by a GOP.
		"-probesize", "32", "-analyzeduration", "0",
		"-f", demuxer, "-i", "pipe:0",
		"-an", "-vf", fmt.Sprintf("scale=%d:%d:flags=area,format=gray", FrameWidth, FrameHeight),
		// One thread on the output side too: the rawvideo encoder's frame
		// threads would hold each frame back until the next one.
		"-threads", "1",
		"-fps_mode", "passthrough", "-flush_packets", "1", "-f", "rawvideo", "pipe:1"}
	cmd := exec.CommandContext(ctx, c.ffmpeg, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("motion: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("motion: %w", err)
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("motion: start ffmpeg: %w", err)
	}
	d := &decoder{cmd: cmd, queue: make(chan fedUnit, c.depth), done: make(chan struct{})}

	// Writer: units to ffmpeg's stdin, so that feeding never waits on the
	// pipe.
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer stdin.Close()
		var buf []byte
		for {
			select {
			case <-d.done:
				return
			case u := <-d.queue:
				d.pushTag(u.tag)
				buf = appendUnit(buf[:0], u.au)
				if _, err := stdin.Write(buf); err != nil {
					return
				}
			}
		}
	}()
	// Reader: gray frames out of ffmpeg, each matched to the tag of the
	// unit it came from.
	go func() {
		defer wg.Done()
		r := bufio.NewReaderSize(stdout, FrameWidth*FrameHeight*2)
		frame := make([]byte, FrameWidth*FrameHeight)
		for {
			if _, err := io.ReadFull(r, frame); err != nil {
				break
			}
			tag, ok := d.popTag()
			if !ok {
				continue // a frame for no unit fed: nothing to stamp it with
			}
			c.onFrame(frame, tag)
			d.setBusy(false)
		}
		err := cmd.Wait()
		msg := strings.TrimSpace(stderr.String())
		if msg == "" && err != nil {
			msg = err.Error()
		}
		c.onExit(d, msg, err)
		d.stop()
	}()
	return d, nil
}

// Access unit delimiters (H.264 7.3.2.4, any picture type; H.265 7.3.2.5,
// pic_type 2), with their start codes.
var (
	audH264 = []byte{0, 0, 0, 1, 0x09, 0xf0}
	audH265 = []byte{0, 0, 0, 1, 0x46, 0x01, 0x50}
)

// appendUnit appends an access unit in Annex-B form, its own delimiters
// left out, followed by a delimiter: ffmpeg's parser knows a unit is
// complete only when the next one starts, and without the delimiter each
// frame would come out one unit late. The hybrid detector feeds keyframes
// seconds apart, and needs each judged at once.
func appendUnit(dst []byte, au *media.AccessUnit) []byte {
	h265 := au.Params != nil && au.Params.Codec == media.H265
	for _, nalu := range au.NALUs {
		if len(nalu) == 0 || (!h265 && nalu[0]&0x1f == 9) || (h265 && (nalu[0]>>1)&0x3f == 35) {
			continue
		}
		dst = append(dst, 0, 0, 0, 1)
		dst = append(dst, nalu...)
	}
	if h265 {
		return append(dst, audH265...)
	}
	return append(dst, audH264...)
}

// enqueue hands a unit to the writer; false if the queue is full.
func (d *decoder) enqueue(au *media.AccessUnit, tag frameTag) bool {
	select {
	case d.queue <- fedUnit{au: au, tag: tag}:
		return true
	default:
		return false
	}
}

// backlog is how many units wait to be written to ffmpeg.
func (d *decoder) backlog() int { return len(d.queue) }

// pending is how many units were written to ffmpeg and not yet returned
// and handled.
func (d *decoder) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy {
		return len(d.tags) + 1
	}
	return len(d.tags)
}

func (d *decoder) setBusy(b bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.busy = b
}

func (d *decoder) pushTag(t frameTag) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.tags) >= cap(d.queue)+pendingTagsSlack {
		d.tags = append(d.tags[:0], d.tags[1:]...)
	}
	d.tags = append(d.tags, t)
}

func (d *decoder) popTag() (frameTag, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.tags) == 0 {
		return frameTag{}, false
	}
	t := d.tags[0]
	d.tags = d.tags[1:]
	d.busy = true
	return t, true
}

func (d *decoder) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *decoder) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
	default:
		close(d.done)
		if d.cmd.Process != nil {
			d.cmd.Process.Kill()
		}
	}
}

// tailBuffer keeps the last few hundred bytes written to it: ffmpeg's last
// words when it dies.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 512 {
		t.buf = t.buf[len(t.buf)-512:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
