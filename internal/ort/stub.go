//go:build !ort

package ort

// Available always fails without the `ort` build tag.
func Available() error { return ErrUnavailable }

// Session is a loaded model (never, in this build).
type Session struct {
	Inputs  []string
	Outputs []string
}

// Open fails without the `ort` build tag.
func Open(string, int) (*Session, error) { return nil, ErrUnavailable }

// Run fails without the `ort` build tag.
func (*Session) Run([]Tensor) ([]Tensor, error) { return nil, ErrUnavailable }

// Close does nothing.
func (*Session) Close() error { return nil }

// Run fails without the `ort` build tag.
func Run(string, []Tensor) ([]Tensor, error) { return nil, ErrUnavailable }
