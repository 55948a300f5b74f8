"""Plot the curves of a ward training log: python3 plot_curves.py log.csv curves.png"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log, out = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(log)))
step = [int(r["step"]) for r in rows]
loss = [float(r["loss"]) for r in rows]
ev = [r for r in rows if r["val_loss"]]
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
k = 20
smooth = [sum(loss[max(0, i - k + 1): i + 1]) / len(loss[max(0, i - k + 1): i + 1]) for i in range(len(loss))]
a.plot(step, loss, alpha=0.25, label="train loss")
a.plot(step, smooth, label=f"train loss ({k}-step mean)")
a.plot([int(r["step"]) for r in ev], [float(r["val_loss"]) for r in ev], "o-", label="validation loss")
a.set_xlabel("step")
a.set_ylabel("masked-diffusion loss (1/t weighted)")
a.legend()
a.grid(alpha=0.3)
es = [int(r["step"]) for r in ev]
b.plot(es, [float(r["val_acc15"]) for r in ev], "o-", label="val accuracy @15% masked")
b.plot(es, [float(r["val_acc50"]) for r in ev], "o-", label="val accuracy @50% masked")
b.set_xlabel("step")
b.set_ylabel("masked-token accuracy")
b.legend()
b.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(out, dpi=100)
