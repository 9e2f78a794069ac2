package s3

import "context"

// RemoveVersions exposes the removal loop without the store's own hold
// check, to prove that the service's WORM refusal maps to ErrHeld (the
// path taken when a hold lands between check and removal).
func RemoveVersions(ctx context.Context, s *Store, key string) error {
	return s.removeVersions(ctx, key, "")
}
