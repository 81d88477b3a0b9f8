"""`evaluate` metric for MOS prediction: PCC, SRCC, KTAU, RMSE (+ bootstrap CIs, system level).

Load it from its path, which needs no Hub access:

    import evaluate, hf_sqa.metrics
    mos = evaluate.load(hf_sqa.metrics.EVALUATE_METRIC_PATH)
    mos.compute(predictions=[3.1, 4.0], references=[3.0, 4.2], conditions=["a", "b"])

The numbers come from hf_sqa.metrics (the one implementation).
"""

import datasets
import evaluate

from hf_sqa.metrics import mos_metrics


class MosQuality(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="PCC, SRCC, KTAU and RMSE between predicted and human MOS, with 95 % bootstrap "
            "intervals for PCC and SRCC and, given conditions, the same at system level.",
            citation="",
            inputs_description="predictions: predicted MOS; references: human MOS; conditions (optional, "
            "keyword of compute): the system/condition of each item",
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references, conditions=None, n_boot=1000, seed=0):
        return mos_metrics(predictions, references, conditions=conditions, n_boot=n_boot, seed=seed)
