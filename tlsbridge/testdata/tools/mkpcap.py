# Wrap a client->server TCP byte stream in a pcap (Ethernet/IPv4/TCP with a
# 3-way handshake) so tshark can dissect it.
import struct, sys
def csum(b):
    if len(b)%2: b+=b'\0'
    s=sum(struct.unpack('!%dH'%(len(b)//2),b)); s=(s>>16)+(s&0xffff); s+=s>>16; return (~s)&0xffff
def pkt(src,dst,sp,dp,seq,ack,flags,payload):
    tcp=struct.pack('!HHIIBBHHH',sp,dp,seq,ack,5<<4,flags,65535,0,0)+payload
    ph=struct.pack('!4s4sBBH',src,dst,0,6,len(tcp))
    c=csum(ph+tcp); tcp=tcp[:16]+struct.pack('!H',c)+tcp[18:]
    ip=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(tcp),1,0,64,6,0,src,dst)
    ip=ip[:10]+struct.pack('!H',csum(ip))+ip[12:]
    return b'\x02'*6+b'\x04'*6+b'\x08\x00'+ip+tcp
data=open(sys.argv[1],'rb').read()
C=bytes([10,0,0,1]); S=bytes([10,0,0,2]); cp=50000; sp=443
frames=[pkt(C,S,cp,sp,1000,0,0x02,b''), pkt(S,C,sp,cp,5000,1001,0x12,b''), pkt(C,S,cp,sp,1001,5001,0x10,b'')]
seq=1001
for i in range(0,len(data),1400):
    seg=data[i:i+1400]; frames.append(pkt(C,S,cp,sp,seq,5001,0x18,seg)); seq+=len(seg)
out=open(sys.argv[2],'wb')
out.write(struct.pack('<IHHiIII',0xa1b2c3d4,2,4,0,0,65535,1))
for n,f in enumerate(frames):
    out.write(struct.pack('<IIII',1700000000+n,0,len(f),len(f))+f)
