package console

import (
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/vigil-cctv/vigil/central/authz"
	"github.com/vigil-cctv/vigil/storage"
)

// cameraInfo is one camera as the page sees it.
type cameraInfo struct {
	ID             string `json:"id"`
	District       string `json:"district"`
	Camera         string `json:"camera"`
	State          string `json:"state"`
	Codec          string `json:"codec"`
	Width          int32  `json:"width"`
	Height         int32  `json:"height"`
	Recording      bool   `json:"recording"`
	AgentConnected bool   `json:"agent_connected"`
	// Video says whether this user may watch the camera.
	Video bool `json:"video"`
}

// handleCameras lists the cameras of the user's districts.
func (c *Console) handleCameras(w http.ResponseWriter, r *http.Request) {
	s, ok := c.session(w, r)
	if !ok {
		return
	}
	agents, err := c.cfg.Registry.Agents()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := []cameraInfo{}
	for _, a := range agents {
		if !s.user.InScope(a.District) {
			continue
		}
		video := authz.AuthorizeDistrict(s.user, authz.ConsoleLive, a.District) == nil
		seen := map[string]bool{}
		for _, st := range a.Cameras {
			seen[st.GetCamera()] = true
			out = append(out, cameraInfo{
				ID: a.District + "/" + st.GetCamera(), District: a.District, Camera: st.GetCamera(),
				State: st.GetState(), Codec: st.GetCodec(), Width: st.GetWidth(), Height: st.GetHeight(),
				Recording: st.GetRecording(), AgentConnected: a.Connected, Video: video,
			})
		}
		known, err := c.cfg.Registry.KnownCameras(a.District)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		for _, cam := range known {
			if !seen[cam] {
				out = append(out, cameraInfo{ID: a.District + "/" + cam, District: a.District, Camera: cam, State: "unknown", AgentConnected: a.Connected, Video: video})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	writeJSON(w, http.StatusOK, out)
}

// splitCamera parses "district/camera".
func splitCamera(id string) (district, camera string, ok bool) {
	district, camera, found := strings.Cut(id, "/")
	if !found || storage.ValidateName("district", district) != nil || storage.ValidateName("camera", camera) != nil {
		return "", "", false
	}
	return district, camera, true
}

func readAll(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
	}
	return b, err
}
