"""What every model family shares: the estimator base, the skorch net, tensor
data and batch iterators, targets, checkpoints and layers. Private."""
