// Package clip shortens strings to the lengths the API allows and tables
// show. Lengths count characters (runes), as the API server's maxLength
// does, and a string is never cut inside a character.
package clip

// To returns s cut to at most n characters.
func To(s string, n int) string {
	if n <= 0 {
		return ""
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}

// Mark returns s cut to at most n characters, the last of them "…" when
// anything was cut, so a reader sees that it was.
func Mark(s string, n int) string {
	if cut := To(s, n); cut != s && n > 0 {
		return To(s, n-1) + "…"
	}
	return To(s, n)
}
