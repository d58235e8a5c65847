"""One LM training step by output layer, side by side: tied full softmax, untied and tied adaptive softmax (textkit LanguageModel, GRU emb 100 / hidden 128, 10,008 words, batch 32 x 72, Zipf-distributed tokens, one thread).

    python bench/lm_output_layers.py    # tokens per CPU second, median of 3 rounds of 4 steps"""
import torch, time, statistics
from textkit.lm import LanguageModel, AdaptiveLoss
import torch.nn.functional as F
torch.set_num_threads(1); torch.manual_seed(0)
V, B, T = 10008, 32, 72
# a Zipf-like stream so the clusters see realistic shares
p = 1/torch.arange(1, V+1).float(); x = torch.multinomial(p, B*(T+1)*4, replacement=True)
ms = {'tied full': dict(tie_weights=True), 'untied adaptive [2000]': dict(adaptive=[2000]), 'tied adaptive [2000]': dict(adaptive=[2000], tie_weights=True),
      'tied adaptive [2000,6000]': dict(adaptive=[2000, 6000], tie_weights=True)}
res = {k: [] for k in ms}
models = {k: LanguageModel(V, 'gru', emb_sz=100, hidden_sz=128, n_layers=1, **kw) for k, kw in ms.items()}
opts = {k: torch.optim.Adam(m.parameters()) for k, m in models.items()}
for r in range(4):
    for k, m in models.items():
        t0 = time.process_time()
        for s in range(4):
            xb = x[s*B*T:(s+1)*B*T].view(B, T); yb = x[s*B*T+1:(s+1)*B*T+1].view(B, T)
            out = m(xb)
            loss = AdaptiveLoss(m)(out, yb) if m.adaptive else F.cross_entropy(out.reshape(-1, V), yb.reshape(-1))
            loss.backward(); opts[k].step(); opts[k].zero_grad()
        if r: res[k].append((time.process_time()-t0)/4)
for k, t in res.items(): print(f"{k:28s} {B*T/statistics.median(t):7.0f} tok/CPU s")
