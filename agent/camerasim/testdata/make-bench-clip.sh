#!/usr/bin/env bash
# make-bench-clip.sh OUT writes the recording benchmarks' clip: 20 s of
# 1920x1080 25 fps H.264 at about 4 Mbit/s, fragmented MP4. The picture is
# mostly temporal noise so the encoder really spends the whole bitrate, as a
# busy real camera does. Generated on demand (testdata/bench/ is git-ignored).
#
# Usage: agent/camerasim/testdata/make-bench-clip.sh agent/camerasim/testdata/bench/bench-1080p.mp4
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 OUT" >&2
	exit 2
fi
out="$1"
command -v ffmpeg >/dev/null || { echo "make-bench-clip: ffmpeg not found" >&2; exit 1; }
mkdir -p "$(dirname "$out")"

# testsrc2 moves (a clock, a sweeping gradient), the noise changes every frame.
ffmpeg -nostdin -hide_banner -loglevel error -y \
	-f lavfi -i "testsrc2=s=1920x1080:r=25:d=20,format=yuv420p,noise=alls=30:allf=t+u" \
	-c:v libx264 -preset veryfast -profile:v high -bf 0 \
	-g 25 -keyint_min 25 -sc_threshold 0 \
	-b:v 4M -maxrate 4M -bufsize 8M -pix_fmt yuv420p \
	-an -map_metadata -1 -fflags +bitexact -flags:v +bitexact \
	-movflags frag_keyframe+empty_moov+default_base_moof -f mp4 "$out"

ls -l "$out"
