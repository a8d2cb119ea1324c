# Independent JA4 (FoxIO technical_details/JA4.md) over tshark 4.0's PDML
# dissection of the first ClientHello in a pcap. Like FoxIO's rust/ja4
# (tls.rs sig_hash_algs), signature algorithms are taken only from the
# signature_algorithms extension (13), not signature_algorithms_cert.
import subprocess, sys, hashlib, xml.etree.ElementTree as ET
GREASE={0x0a0a+0x1010*i for i in range(16)}
pdml=subprocess.run(['tshark','-r',sys.argv[1],'-Y','tls.handshake.type==1','-T','pdml'],capture_output=True,text=True).stdout
root=ET.fromstring(pdml)
hs=None
for f in root.iter('field'):
    if f.get('name')=='tls.handshake' and any(c.get('name')=='tls.handshake.type' and c.get('show')=='1' for c in f):
        hs=f; break
ciphers=[];exts=[];sv=[];sigs=[];sni=False;alpn=None;ver=None;cur=None
for f in hs.iter('field'):
    n=f.get('name'); s=f.get('show')
    if n=='tls.handshake.version' and ver is None: ver=int(f.get('value'),16)
    elif n=='tls.handshake.ciphersuite': ciphers.append(int(s,0))
    elif n=='tls.handshake.extension.type': cur=int(s); exts.append(cur)
    elif n=='tls.handshake.extensions.supported_version': sv.append(int(s,0))
    elif n=='tls.handshake.extensions_alpn_str' and alpn is None: alpn=s
    elif n=='tls.handshake.sig_hash_alg' and cur==13: sigs.append(int(s,0))
ciphers=[c for c in ciphers if c not in GREASE]; exts=[e for e in exts if e not in GREASE]
sv=[v for v in sv if v not in GREASE]
if sv: ver=max(sv)
vmap={0x0304:'13',0x0303:'12',0x0302:'11',0x0301:'10',0x0300:'s3'}
sni='d' if 0 in exts else 'i'
a='00' if not alpn else (alpn[0]+alpn[-1])
sigs=['%04x'%s for s in sigs if s not in GREASE]
cs=','.join(sorted('%04x'%c for c in ciphers))
es=','.join(sorted('%04x'%e for e in exts if e not in (0,0x10)))
if sigs: es+='_'+','.join(sigs)
h=lambda s: '000000000000' if not s else hashlib.sha256(s.encode()).hexdigest()[:12]
pre='t%s%s%02d%02d%s'%(vmap.get(ver,'00'),sni,min(len(ciphers),99),min(len(exts),99),a)
print(pre+'_'+h(cs)+'_'+h(es)); print(pre+'_'+cs+'_'+es)
