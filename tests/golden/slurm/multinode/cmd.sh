python3 -m torch.distributed.run train.py
