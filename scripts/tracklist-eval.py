#!/usr/bin/env python3
"""Measures `audiofp tracklist` on recorded sets made from the development corpus.

Each set joins 8 indexed songs (refs/) and 2 unindexed tracks (negrefs/, without d0090 and
d0093, whose audio indexed songs hold) in random order, 30-80 s of each from a random place,
with 3 s crossfades (ffmpeg acrossfade), mono 22.05 kHz, MP3 128 kb/s; then the same set with
white noise at 10 dB and 0 dB SNR. Prints, per set, the indexed songs listed over the time
they play, entries naming a song not played there ("wrong": on this corpus, songs sharing the
audio of the one playing), and the largest error of the place in the song.

usage: tracklist-eval.py AUDIOFP DB CORPUS SEED SETS   (DB: the corpus's refs indexed)
needs ffmpeg, ffprobe and numpy.
"""
import json, random, subprocess, sys, os
B, DB, CORPUS = sys.argv[1], sys.argv[2], sys.argv[3]
sys.argv = [sys.argv[0]] + sys.argv[4:]
R=CORPUS+'/refs'; N=CORPUS+'/negrefs'
def dur(p):
    return float(subprocess.run(['ffprobe','-v','error','-show_entries','format=duration','-of','csv=p=0',p],capture_output=True,text=True).stdout)
import tempfile
TMP=tempfile.mkdtemp(prefix='tracklist-eval-')
rng=random.Random(int(sys.argv[1]) if len(sys.argv)>1 else 1)
refs=sorted(os.listdir(R)); negs=sorted(os.listdir(N))
negs=[n for n in negs if n not in ('d0090.ogg','d0093.ogg')]
results=[]
start_errors={}; end_errors={}
for mix in range(int(sys.argv[2]) if len(sys.argv)>2 else 3):
    parts=[]
    picks=rng.sample(refs,8)+rng.sample(negs,2)
    rng.shuffle(picks)
    for f in picks:
        d=(R if f in refs else N)+'/'+f
        L=dur(d); seg=rng.uniform(30,80); seg=min(seg,L-1); st=rng.uniform(0,L-seg)
        parts.append((f,d,st,seg))
    # build with ffmpeg: trim each, crossfade 3 s
    inputs=[]; filt=[]
    for i,(f,d,st,seg) in enumerate(parts):
        inputs+=['-i',d]; filt.append(f'[{i}:a]atrim={st:.3f}:{st+seg:.3f},asetpts=N/SR/TB,aformat=sample_rates=44100:channel_layouts=stereo[p{i}]')
    prev='p0'
    XF=3.0
    for i in range(1,len(parts)):
        filt.append(f'[{prev}][p{i}]acrossfade=d={XF}[x{i}]'); prev=f'x{i}'
    for cond in ['clean','noise10','noise0']:
        out=f'{TMP}/mix{mix}_{cond}.mp3'
        f2=list(filt)
        if cond.startswith('noise'):
            snr=int(cond[5:])
            # noise relative to mix rms: approximate with fixed amplitude: measure later; use anoisesrc amplitude
            f2.append(f'[{prev}]asplit[m1][m2]')
            lastlab='m1'
        cmd=['ffmpeg','-loglevel','error','-y']+inputs+['-filter_complex',';'.join(filt),'-map',f'[{prev}]','-ac','1','-ar','22050',TMP+'/mixbase.wav']
        if cond=='clean':
            subprocess.run(cmd,check=True)
            subprocess.run(['ffmpeg','-loglevel','error','-y','-i',TMP+'/mixbase.wav','-b:a','128k',out],check=True)
        else:
            import numpy as np, wave
            w=wave.open(TMP+'/mixbase.wav'); x=np.frombuffer(w.readframes(w.getnframes()),dtype=np.int16).astype(np.float64); sr=w.getframerate()
            p=np.mean(x**2); nz=np.random.default_rng(mix).normal(0,np.sqrt(p/10**(snr/10)),len(x))
            y=np.clip(x+nz,-32768,32767).astype(np.int16)
            o=wave.open(TMP+'/mixnoisy.wav','wb'); o.setnchannels(1); o.setsampwidth(2); o.setframerate(sr); o.writeframes(y.tobytes()); o.close()
            subprocess.run(['ffmpeg','-loglevel','error','-y','-i',TMP+'/mixnoisy.wav','-b:a','128k',out],check=True)
        # truth
        truth=[]; t=0.0
        for i,(f,d,st,seg) in enumerate(parts):
            truth.append((f[:5],t,t+seg,st)); t+=seg-XF
        res=json.loads(subprocess.run([B,'--db',DB,'tracklist','--json',out],capture_output=True,text=True).stdout)[0]
        got=[(os.path.basename(s['path'] or s['title'])[:5],s['from_seconds'],s['to_seconds'],s['song_from_seconds'],s['confidence'],s['windows']) for s in res['songs']]
        ok=0; wrong=0; offerr=[]
        matched=set()
        for g in got:
            hit=[tr for tr in truth if tr[0]==g[0] and not (g[2]<tr[1] or g[1]>tr[2])]
            if hit:
                tr=hit[0]; matched.add(tr[0]); offerr.append(abs((g[3]-g[1])-(tr[3]-tr[1])))
            else: wrong+=1; print('  WRONG',cond,g)
        indexed=[tr for tr in truth if tr[0]+'.ogg' in refs]
        found=sum(1 for tr in indexed if tr[0] in matched)
        # Start and end errors: each played song against its entry overlapping it most.
        for tr in indexed:
            over=[g for g in got if g[0]==tr[0] and not (g[2]<tr[1] or g[1]>tr[2])]
            if over:
                g=max(over,key=lambda g: min(g[2],tr[2])-max(g[1],tr[1]))
                start_errors.setdefault(cond,[]).append(g[1]-tr[1]); end_errors.setdefault(cond,[]).append(g[2]-tr[2])
                if os.environ.get('SHOW') and (abs(g[1]-tr[1])>3 or abs(g[2]-tr[2])>3):
                    print('   far', cond, 'truth', tr, 'entry', g)
        print(f'mix{mix} {cond}: {found}/{len(indexed)} indexed songs found, {wrong} wrong entries, {len(got)} entries, max offset err {max(offerr) if offerr else 0:.2f}s, {res["processing_time_ms"]:.0f} ms for {res["recording_seconds"]:.0f} s')
        if os.environ.get('SHOW') == 'all':
            for tr in truth: print('   truth',tr)
            for g in got: print('   got',g)
        for tr in truth: 
            if tr[0]+'.ogg' in refs and tr[0] not in matched: print('  MISSED',cond,tr)
def spread(errors):
    errors=sorted(errors)
    if not errors: return 'none'
    pick=lambda q: errors[min(len(errors)-1,int(q*len(errors)))]
    return f'min {errors[0]:+.1f} s, median {pick(0.5):+.1f} s, 90 % {pick(0.9):+.1f} s, max {errors[-1]:+.1f} s'
for cond in start_errors:
    print(f'{cond}: start of an entry minus the start of the song played ({len(start_errors[cond])}): {spread(start_errors[cond])}')
    print(f'{cond}: end of an entry minus the end of the song played ({len(end_errors[cond])}): {spread(end_errors[cond])}')
