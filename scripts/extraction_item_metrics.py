"""Item-level figures of an extraction eval run (smallfirst eval): ECE, Brier and accuracy of the 80% most confident,
for the recorded item confidence and for the product and the minimum of the field confidences; per-field figures.

Usage: python scripts/extraction_item_metrics.py docs/eval/trained-sroie/run.jsonl
"""
import json, sys
import numpy as np
from shared.foundation.answers import fields_correct
from shared.foundation.metrics import expected_calibration_error, selective_accuracy
recs = [json.loads(l) for l in open(sys.argv[1])]
right = [all(fields_correct(r['answer'], r['gold']).values()) for r in recs]
fc = [r['field_confidence'] for r in recs]
out = {'items': len(recs), 'item_accuracy': float(np.mean(right))}
for rule, conf in {'recorded (head item_rule)': [r['confidence'] for r in recs],
                   'product': [float(np.prod(list(f.values()))) for f in fc],
                   'min': [min(f.values()) for f in fc]}.items():
    out[rule] = {'ece': expected_calibration_error(conf, right), 'selective_accuracy_80': selective_accuracy(conf, right, 0.8),
                 'brier': float(np.mean((np.array(conf) - np.array(right)) ** 2))}
for name in recs[0]['gold']:
    ok = [fields_correct(r['answer'], r['gold'])[name] for r in recs]
    conf = [r['field_confidence'][name] for r in recs]
    out[name] = {'exact': float(np.mean(ok)), 'ece': expected_calibration_error(conf, ok),
                 'selective_accuracy_80': selective_accuracy(conf, ok, 0.8)}
print(json.dumps(out, indent=1))
