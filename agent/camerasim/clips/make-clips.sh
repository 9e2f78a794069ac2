#!/usr/bin/env bash
# make-clips.sh writes the simulated cameras' clips and their ground truth into
# the directory of this script. Everything is synthesised by ffmpeg (no
# downloads) and single-threaded, so a given ffmpeg/x264/x265 build always
# produces byte-identical files.
#
# Each scene is a still, textured street (static noise over a few flat shapes)
# with a little temporal noise so that no two frames are identical, and
# person-sized shapes crossing it at known seconds. NAME.json beside NAME.mp4
# lists when an object is in the picture: {"events":[{"start":S,"end":E}]}.
#
# Usage: agent/camerasim/clips/make-clips.sh   (needs ffmpeg with libx264 and libx265)
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v ffmpeg >/dev/null || { echo "make-clips: ffmpeg not found" >&2; exit 1; }

W=640
H=360
FPS=25

# background DURATION: the street, as a filtergraph source labelled [bg].
background() {
	local d="$1"
	# Static texture first (noise without the t flag does not change between
	# frames), then the scenery on top, so the picture is busy but still.
	printf '%s' "color=c=0x707868:s=${W}x${H}:r=${FPS}:d=${d},format=yuv420p,"
	printf '%s' "drawbox=x=0:y=250:w=${W}:h=110:color=0x505048:t=fill,"
	printf '%s' "drawbox=x=40:y=40:w=150:h=200:color=0x8c7c6c:t=fill,"
	printf '%s' "drawbox=x=430:y=70:w=170:h=180:color=0x6c7c8c:t=fill,"
	printf '%s' "drawbox=x=60:y=70:w=30:h=40:color=0x303840:t=fill,"
	printf '%s' "drawbox=x=130:y=70:w=30:h=40:color=0x303840:t=fill,"
	printf '%s' "drawbox=x=460:y=100:w=40:h=50:color=0x303030:t=fill,"
	printf '%s' "drawbox=x=530:y=100:w=40:h=50:color=0x303030:t=fill,"
	printf '%s' "noise=alls=24:allf=u,gblur=sigma=0.8[bg]"
}

# walker NAME START END DIRECTION W H COLOR: a sprite crossing the frame
# between START and END seconds (DIRECTION 1 = left to right, -1 = right to
# left). It enters at START with its leading edge on the border and has fully
# left at END, so [START, END] is exactly when it is in the picture.
walker() {
	local in="$1" out="$2" start="$3" end="$4" dirn="$5" w="$6" h="$7" color="$8"
	local span=$((W + w))
	local x
	if [ "$dirn" = 1 ]; then
		x="-${w}+(t-${start})/(${end}-${start})*${span}"
	else
		x="${W}-(t-${start})/(${end}-${start})*${span}"
	fi
	local y=$((270 - h + 60))
	# The sprite is a body with a lighter head band, so it has an edge inside.
	printf '%s' "color=c=${color}:s=${w}x${h}:r=${FPS},format=yuv420p,"
	printf '%s' "drawbox=x=0:y=0:w=${w}:h=$((h / 5)):color=0xc8a888:t=fill[${out}s];"
	printf '%s' "[${in}][${out}s]overlay=x='${x}':y=${y}:shortest=1:enable='between(t,${start},${end})'[${out}]"
}

# A little temporal noise on luma so consecutive frames differ, as a real
# sensor's do; small enough that motion detectors must not see it as motion.
GRAIN="noise=c0s=5:c0f=t"

# Common x264 settings: one-second closed GOP, no scene-cut keyframes, one
# thread for determinism, low bitrate, fragment per keyframe.
X264=(-c:v libx264 -preset medium -threads 1 -g "$FPS" -keyint_min "$FPS" -sc_threshold 0
	-crf 28 -maxrate 200k -bufsize 400k -pix_fmt yuv420p
	-bsf:v filter_units=remove_types=6)
# negative_cts_offsets makes ffmpeg write version-1 trun boxes, the only ones
# whose composition offsets (B-frame PTS) mediacommon's fMP4 reader sees.
MP4=(-an -map_metadata -1 -fflags +bitexact -flags:v +bitexact
	-movflags frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets -f mp4)

encode() {
	local name="$1" duration="$2" graph="$3"
	shift 3
	ffmpeg -nostdin -hide_banner -loglevel error -y \
		-filter_complex "$graph" -map '[v]' -t "$duration" -r "$FPS" \
		"$@" "${MP4[@]}" "$dir/$name.mp4"
}

truth() {
	local name="$1" events="$2"
	printf '{"events":[%s]}\n' "$events" >"$dir/$name.json"
}

# still: 30 s, nothing moves.
encode still 30 "$(background 30);[bg]${GRAIN}[v]" \
	"${X264[@]}" -profile:v main -bf 0
truth still ''

# walk: 30 s, a person left to right 6-10 s, another right to left 20-23 s.
encode walk 30 "$(background 30);$(walker bg w1 6 10 1 40 110 0x283040);$(walker w1 w2 20 23 -1 46 120 0x402820);[w2]${GRAIN}[v]" \
	"${X264[@]}" -profile:v main -bf 0
truth walk '{"start":6,"end":10},{"start":20,"end":23}'

# walk-bframes: 20 s with B-frames (high profile, 2 B-frames, pyramid), so
# the consumers' DTS handling is exercised; crossings 3-7 s and 12-15 s.
encode walk-bframes 20 "$(background 20);$(walker bg w1 3 7 -1 40 110 0x203828);$(walker w1 w2 12 15 1 44 116 0x383020);[w2]${GRAIN}[v]" \
	"${X264[@]}" -profile:v high -bf 2 -b_strategy 0
truth walk-bframes '{"start":3,"end":7},{"start":12,"end":15}'

# walk-h265: 20 s of H.265, one crossing 8-12 s. Closed GOP so every
# keyframe is an IDR, no B-frames.
encode walk-h265 20 "$(background 20);$(walker bg w1 8 12 1 42 112 0x302838);[w1]${GRAIN}[v]" \
	-c:v libx265 -preset medium -tag:v hvc1 -pix_fmt yuv420p \
	-x265-params "log-level=error:pools=none:frame-threads=1:keyint=${FPS}:min-keyint=${FPS}:scenecut=0:open-gop=0:bframes=0:crf=30:vbv-maxrate=200:vbv-bufsize=400:info=0"
truth walk-h265 '{"start":8,"end":12}'

ls -l "$dir"/*.mp4 "$dir"/*.json
