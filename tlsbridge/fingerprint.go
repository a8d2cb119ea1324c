package tlsbridge

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// JA3 returns the JA3 fingerprint of the hello (Salesforce, 2017):
// the string "version,ciphers,extensions,groups,point_formats", where
// version is LegacyVersion and each list is the decimal values in wire
// order joined by '-', with GREASE values left out; and the lower-case hex
// MD5 of that string.
func (c *ClientHello) JA3() (full string, md5hex string) {
	var b strings.Builder
	b.WriteString(strconv.Itoa(int(c.LegacyVersion)))
	b.WriteByte(',')
	writeDecList(&b, c.CipherSuites)
	b.WriteByte(',')
	exts := make([]uint16, 0, len(c.Extensions))
	for _, e := range c.Extensions {
		exts = append(exts, e.Type)
	}
	writeDecList(&b, exts)
	b.WriteByte(',')
	writeDecList(&b, c.SupportedGroups)
	b.WriteByte(',')
	for i, f := range c.ECPointFormats {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(strconv.Itoa(int(f)))
	}
	full = b.String()
	sum := md5.Sum([]byte(full))
	return full, hex.EncodeToString(sum[:])
}

func writeDecList(b *strings.Builder, vs []uint16) {
	first := true
	for _, v := range vs {
		if IsGREASE(v) {
			continue
		}
		if !first {
			b.WriteByte('-')
		}
		first = false
		b.WriteString(strconv.Itoa(int(v)))
	}
}

// JA4 returns the JA4 fingerprint of the hello for TLS over TCP, following
// FoxIO's specification (technical_details/JA4.md, BSD-3-Clause):
//
//	t | version | d or i | cipher count | extension count | ALPN first+last
//	_ sha256(sorted ciphers)[:12]
//	_ sha256(sorted extensions without SNI and ALPN "_" signature algorithms)[:12]
//
// GREASE values are ignored everywhere. The version is the highest
// supported_versions value, else LegacyVersion ("13", "12", "11", "10",
// "s3", "s2", "00" if unknown). "d" means an SNI extension is present.
// Counts are two decimal digits, capped at 99; the extension count
// includes SNI and ALPN. Lists are 4-digit lower-case hex joined by ','.
// An empty cipher or extension list hashes to "000000000000"; without
// signature algorithms the extension string has no trailing '_'.
func (c *ClientHello) JA4() string {
	a, ciphers, exts := c.ja4Parts()
	return a + "_" + ja4Hash(ciphers) + "_" + ja4Hash(exts)
}

// JA4Raw returns JA4_r, the fingerprint with its lists in clear instead of
// hashed, which is what to compare when two JA4 values differ.
func (c *ClientHello) JA4Raw() string {
	a, ciphers, exts := c.ja4Parts()
	return a + "_" + ciphers + "_" + exts
}

func (c *ClientHello) ja4Parts() (a, ciphers, exts string) {
	version := c.LegacyVersion
	if c.SupportedVersions != nil {
		version = 0
		for _, v := range c.SupportedVersions {
			if !IsGREASE(v) && v > version {
				version = v
			}
		}
	}
	sni := "i"
	if c.HasExtension(ExtServerName) {
		sni = "d"
	}
	var suites []string
	for _, s := range c.CipherSuites {
		if !IsGREASE(s) {
			suites = append(suites, fmt.Sprintf("%04x", s))
		}
	}
	var extList []string
	extCount := 0
	for _, e := range c.Extensions {
		if IsGREASE(e.Type) {
			continue
		}
		extCount++
		if e.Type != ExtServerName && e.Type != ExtALPN {
			extList = append(extList, fmt.Sprintf("%04x", e.Type))
		}
	}
	var sigs []string
	for _, s := range c.SignatureAlgorithms {
		if !IsGREASE(s) {
			sigs = append(sigs, fmt.Sprintf("%04x", s))
		}
	}
	slices.Sort(suites)
	slices.Sort(extList)
	a = fmt.Sprintf("t%s%s%02d%02d%s", ja4Version(version), sni, min(len(suites), 99), min(extCount, 99), c.ja4ALPN())
	ciphers = strings.Join(suites, ",")
	exts = strings.Join(extList, ",")
	if len(sigs) > 0 {
		exts += "_" + strings.Join(sigs, ",")
	}
	return a, ciphers, exts
}

// ja4Hash is the first 12 hex digits of SHA-256, or twelve zeros for an
// empty list (the specification marks "no values" that way).
func ja4Hash(s string) string {
	if s == "" {
		return "000000000000"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}

func ja4Version(v uint16) string {
	switch v {
	case VersionTLS13:
		return "13"
	case VersionTLS12:
		return "12"
	case VersionTLS11:
		return "11"
	case VersionTLS10:
		return "10"
	case VersionSSL30:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xFEFF:
		return "d1"
	case 0xFEFD:
		return "d2"
	case 0xFEFC:
		return "d3"
	}
	return "00"
}

// ja4ALPN is the first and last character of the first ALPN value, "00"
// without one. A one-character value counts as both. If either end byte is
// not ASCII alphanumeric, the first and last characters of the value's hex
// form are used instead (JA4.md, "ALPN Extension Value"). FoxIO's Rust
// implementation differs in these corner cases (it writes "h0" for "h" and
// '9' for a non-ASCII byte); the specification text is followed here.
func (c *ClientHello) ja4ALPN() string {
	if len(c.ALPN) == 0 || c.ALPN[0] == "" {
		return "00"
	}
	p := c.ALPN[0]
	first, last := p[0], p[len(p)-1]
	if isAlnum(first) && isAlnum(last) {
		return string([]byte{first, last})
	}
	h := hex.EncodeToString([]byte(p))
	return string([]byte{h[0], h[len(h)-1]})
}

func isAlnum(b byte) bool {
	return '0' <= b && b <= '9' || 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z'
}
