package clip

import "testing"

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		s       string
		n       int
		to, mrk string
	}{
		{"gateway", 10, "gateway", "gateway"},
		{"gateway", 7, "gateway", "gateway"},
		{"gateway", 4, "gate", "gat…"},
		{"héllo wörld", 5, "héllo", "héll…"},
		{"日本語", 2, "日本", "日…"},
		{"x", 0, "", ""},
	} {
		if got := To(tc.s, tc.n); got != tc.to {
			t.Errorf("To(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.to)
		}
		if got := Mark(tc.s, tc.n); got != tc.mrk {
			t.Errorf("Mark(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.mrk)
		}
	}
}
