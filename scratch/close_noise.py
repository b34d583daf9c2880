import sys
from dataclasses import replace
from vpp.scheduler.partition import PartitionedScheduler
from vpp.scheduler.synthetic import mixed_fleet, tou_price
from vpp.scheduler import EventCall, HorizonData
n = 32
devs, base = mixed_fleet(30, n=n, seed=1)
devs = [replace(d, owner=f"o{i // 10}") for i, d in enumerate(devs)]
target = 0.1 * base.sum(axis=0)[16:24].mean()
data = HorizonData(base, tou_price(n, start_hour=12), EventCall(16, 24, target))
ps = PartitionedScheduler(partition_size=10)
ps.plan(devs, data)
ps.close()
print("closed", file=sys.stderr)
