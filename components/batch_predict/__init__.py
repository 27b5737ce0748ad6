from components.batch_predict.component import commit_batch_predictions, plan_batch_prediction, score_batch_shard

__all__ = ["commit_batch_predictions", "plan_batch_prediction", "score_batch_shard"]
