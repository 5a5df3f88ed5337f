"""The official DashScope Python SDK against `wandash sim`: every call shape the vendor's
documents describe for image models (text2image async and waited, image-generation async
and sync, multimodal-generation sync). Run:

    wandash sim --listen 127.0.0.1:8799 --latency 300ms..600ms &
    python3 -m venv /tmp/sdk && /tmp/sdk/bin/pip install dashscope==2.0.2
    /tmp/sdk/bin/python docs/sdk_check.py

Each call should print status=200 and an output with image URLs the simulator serves.
"""
import dashscope, json, sys
from dashscope import ImageSynthesis, MultiModalConversation
dashscope.base_http_api_url = "http://127.0.0.1:8799/api/v1"
KEY = "sk-test"
def show(name, r):
    print(f"== {name}: status={getattr(r,'status_code',None)} code={getattr(r,'code',None)} msg={getattr(r,'message',None)}")
    out = getattr(r, 'output', None)
    print("   output:", json.dumps(out, default=str)[:400] if out is not None else None)

# 1. ImageSynthesis.call (async create + wait, text2image)
r = ImageSynthesis.call(api_key=KEY, model="wanx2.1-t2i-turbo", prompt="a lighthouse at dusk", n=2, size="1024*1024")
show("ImageSynthesis.call wanx2.1-t2i-turbo", r)
# 2. ImageSynthesis.async_call + fetch + wait
t = ImageSynthesis.async_call(api_key=KEY, model="wan2.2-t2i-flash", prompt="a red fox", n=1)
show("ImageSynthesis.async_call wan2.2-t2i-flash", t)
w = ImageSynthesis.wait(t, api_key=KEY)
show("ImageSynthesis.wait", w)
# 3. image-generation: ImageGeneration if present
try:
    from dashscope.aigc.image_generation import ImageGeneration
except Exception as e:
    ImageGeneration = None
    print("no ImageGeneration class:", e)
if ImageGeneration:
    msgs = [{"role": "user", "content": [{"text": "a flower shop"}]}]
    r = ImageGeneration.async_call(api_key=KEY, model="wan2.6-t2i", messages=msgs, n=1, size="1280*1280")
    show("ImageGeneration.async_call wan2.6-t2i", r)
    try:
        w = ImageGeneration.wait(r, api_key=KEY)
        show("ImageGeneration.wait", w)
    except Exception as e:
        print("ImageGeneration.wait failed:", repr(e))
    r = ImageGeneration.call(api_key=KEY, model="wan2.6-t2i", messages=msgs, n=1, size="1280*1280")
    show("ImageGeneration.call (sync) wan2.6-t2i", r)
# 4. MultiModalConversation.call qwen-image-max (sync)
r = MultiModalConversation.call(api_key=KEY, model="qwen-image-max", messages=[{"role": "user", "content": [{"text": "a bowl of ramen"}]}])
show("MultiModalConversation.call qwen-image-max", r)
