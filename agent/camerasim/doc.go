// Package camerasim is the simulated IP camera of vigil: an RTSP server that
// loops short H.264/H.265 clips in real time on paths /cam1 … /camN, as a
// fleet of real cameras would stream them. It backs `vigil camera-sim`,
// `vigil demo` and the tests and benchmarks of the recording pipeline.
//
// Clips are fragmented MP4 files, each optionally with a NAME.json ground
// truth beside it ({"events":[{"start":S,"end":E}]}, seconds when an object
// moves in the picture), so motion detection can be scored against it. A
// small set is embedded in the binary (see clips/make-clips.sh, which
// regenerates them); users can bring their own in any container ffmpeg reads.
//
// Every path publishes exactly when each clip instant is sent (Server.Epoch),
// so a test can map a second of the clip to wall-clock time and check what
// the recorder kept.
package camerasim
