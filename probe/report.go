package probe

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tdsproxy/tdsproxy/tlsbridge"
)

// WriteText writes the readable report `tdsproxy probe` prints.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "tdsproxy probe %s\n\n", r.Target)
	for _, section := range []func(*strings.Builder){
		r.writePrelogin, r.writeVersions, r.writeSuites, r.writeDHE,
		r.writeCertificates, r.writeTiming, r.writeProfiles, r.writeVerdicts,
	} {
		section(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writePrelogin writes the PRELOGIN answers and TDS 8.0 support.
func (r *Result) writePrelogin(b *strings.Builder) {
	pl := r.Prelogin
	fmt.Fprintf(b, "PRELOGIN (via %s)\n", pl.Via)
	fmt.Fprintf(b, "  server version     %s\n", orDash(pl.Version))
	fmt.Fprintf(b, "  encryption         %s", orDash(pl.Encryption))
	if pl.ForcesEncryption {
		b.WriteString(" (forced)")
	}
	b.WriteString("\n")
	for _, k := range []string{"OFF", "ON", "NOT_SUP"} {
		if a, ok := pl.Answers[k]; ok {
			fmt.Fprintf(b, "    asked %-8s -> %s\n", k, a)
		}
	}
	if pl.Instance != "" {
		fmt.Fprintf(b, "  instance           %s\n", pl.Instance)
	}
	fmt.Fprintf(b, "  FEDAUTHREQUIRED    %v\n  MARS               %v\n", pl.FedAuthRequired, pl.MARS)
	fmt.Fprintf(b, "  TDS 8.0 strict     %v", r.Strict.Supported)
	if r.Strict.Supported {
		fmt.Fprintf(b, " (%s; ALPN %q)", strings.Join(r.Strict.Versions, ", "), r.Strict.ALPN)
	}
	b.WriteString("\n\n")
}

// writeVersions writes each version's answer in both modes.
func (r *Result) writeVersions(b *strings.Builder) {
	b.WriteString("TLS versions (one version per hello)\n")
	tw := tabwriter.NewWriter(b, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  version\tinside PRELOGIN\tstrict\n")
	for _, v := range allVersions {
		n := tlsbridge.VersionName(v)
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", n, orDash(r.VersionAnswers[n]), orDash(r.Strict.Answers[n]))
	}
	tw.Flush()
	b.WriteString("\n")
}

// writeSuites writes the suites accepted per version.
func (r *Result) writeSuites(b *strings.Builder) {
	b.WriteString("Cipher suites\n")
	for _, v := range allVersions {
		n := tlsbridge.VersionName(v)
		where := "inside PRELOGIN"
		suites, ok := r.CipherSuites[n]
		if !ok {
			if suites, ok = r.Strict.CipherSuites[n]; !ok {
				continue
			}
			where = "strict"
		}
		fmt.Fprintf(b, "  %s %s (%s order)\n", n, where, r.CipherOrder[n])
		for _, s := range suites {
			fmt.Fprintf(b, "    %-48s %s\n", s, r.KeyExchange[s])
		}
	}
	b.WriteString("\n")
}

// writeDHE writes the DHE suites and the leading-zero tests.
func (r *Result) writeDHE(b *strings.Builder) {
	d := r.DHE
	b.WriteString("DHE\n")
	if len(d.Suites) == 0 {
		b.WriteString("  no DHE suite accepted\n")
	} else {
		fmt.Fprintf(b, "  suites             %s\n  prime bits         %v\n", strings.Join(d.Suites, ", "), d.GroupsBits)
	}
	fmt.Fprintf(b, "  leading zero       %s", d.LeadingZero)
	if d.LeadingZeroReason != "" {
		fmt.Fprintf(b, " (%s)", d.LeadingZeroReason)
	}
	fmt.Fprintf(b, "\n  short public       %s", d.ShortPublic)
	if d.ShortPublicReason != "" {
		fmt.Fprintf(b, " (%s)", d.ShortPublicReason)
	}
	b.WriteString("\n\n")
}

// writeCertificates writes the chain and the signature schemes it needs.
func (r *Result) writeCertificates(b *strings.Builder) {
	b.WriteString("Certificate chain\n")
	if len(r.Certificates) == 0 {
		b.WriteString("  none seen\n")
	}
	for i, c := range r.Certificates {
		fmt.Fprintf(b, "  [%d] %s\n", i, c.Subject)
		fmt.Fprintf(b, "      issuer %s; %s; key %s-%d\n", c.Issuer, c.SignatureAlgorithm, c.KeyType, c.KeyBits)
		fmt.Fprintf(b, "      thumbprint %s\n", c.ThumbprintSHA1)
		state := "valid"
		switch {
		case c.Expired:
			state = "EXPIRED (or not yet valid)"
		case c.ExpiresSoon:
			state = "expires within 30 days"
		}
		fmt.Fprintf(b, "      %s .. %s, %s", c.NotBefore, c.NotAfter, state)
		if c.HostNameMatch != nil {
			fmt.Fprintf(b, "; host name match %v", *c.HostNameMatch)
		}
		b.WriteString("\n")
	}
	sa := r.SignatureAlgs
	if sa.Tested != "" {
		fmt.Fprintf(b, "  one signature scheme per hello (%s): accepted %s; refused %s\n", sa.Tested, listOrNone(sa.AcceptedAlone), listOrNone(sa.RefusedAlone))
	}
	if len(sa.ClientMustList) > 0 {
		fmt.Fprintf(b, "  a TLS 1.2 client must list %s\n", strings.Join(sa.ClientMustList, ", "))
	}
	b.WriteString("\n")
}

// writeTiming writes the connect and PRELOGIN samples.
func (r *Result) writeTiming(b *strings.Builder) {
	fmt.Fprintf(b, "Timing (%d samples)\n  connect ms         %v\n  PRELOGIN ms        %v\n", r.Timing.Samples, r.Timing.ConnectMS, r.Timing.PreloginMS)
	for _, f := range r.Timing.Failures {
		fmt.Fprintf(b, "  failed: %s\n", f)
	}
	b.WriteString("\n")
}

// writeProfiles writes one line per client profile.
func (r *Result) writeProfiles(b *strings.Builder) {
	if len(r.Profiles) > 0 {
		b.WriteString("Client profiles\n")
		tw := tabwriter.NewWriter(b, 2, 4, 2, ' ', 0)
		for _, p := range r.Profiles {
			res := "fails"
			if p.Connects {
				res = "connects " + p.Version + " " + p.CipherSuite
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, res, orDash(p.Scenario), p.Why)
		}
		tw.Flush()
		b.WriteString("\n")
	}
}

// writeVerdicts writes one verdict per scenario, then the notes.
func (r *Result) writeVerdicts(b *strings.Builder) {
	b.WriteString("Verdicts\n")
	for _, v := range r.Verdicts {
		fmt.Fprintf(b, "  %s: %s — %s\n", v.Scenario, v.Status, v.Why)
		if v.Status == StatusRisk {
			fmt.Fprintf(b, "      Fix: %s\n", v.Fix)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes\n")
		for _, n := range r.Notes {
			fmt.Fprintf(b, "  %s\n", n)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(slices.Clone(xs), ", ")
}
