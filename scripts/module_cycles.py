import os,re,sys,itertools
root="src"
mods={}
for dp,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith(".rs"): continue
        p=os.path.join(dp,f); rel=os.path.relpath(p,root)[:-3]
        parts=rel.split("/")
        if parts[-1] in("mod","lib","main"): parts=parts[:-1]
        mods["::".join(parts)]=p
def resolve(cur, path):
    segs=path.split("::")
    if segs[0]=="crate": base=[]; segs=segs[1:]
    elif segs[0]=="super":
        base=cur.split("::")[:-1] if cur else []
        segs=segs[1:]
        while segs and segs[0]=="super": base=base[:-1]; segs=segs[1:]
    elif segs[0]=="self": base=cur.split("::") if cur else []; segs=segs[1:]
    else: return None
    best=None
    for i in range(len(segs),-1,-1):
        m="::".join(base+segs[:i])
        if m in mods: best=m; break
    return best
edges={}
for m,p in mods.items():
    s=open(p).read()
    s=re.sub(r"(?m)^\s*//.*$", "", s)
    s=re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", s, flags=re.S)
    is_modrs = p.endswith("mod.rs") or p.endswith("lib.rs")
    cur = m if is_modrs else m  # super in a file refers to parent of m
    deps=set()
    for mm in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", s):
        path=mm.group(1)
        # for mod.rs, 'super' is parent of module; for file x.rs also parent of x
        t=resolve(m, path)
        if t and t!=m and not t.startswith(m+"::") and not m.startswith(t+"::") : deps.add(t)
    edges[m]=deps
# find cycles among modules (SCCs)
idx={};low={};st=[];on=set();res=[];c=[0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in edges.get(v,()):
        if w not in idx: sc(w); low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: res.append(comp)
for v in edges:
    if v not in idx: sc(v)
for r in res: print("CYCLE:", sorted(r))
print("modules",len(mods),"cycles",len(res))
