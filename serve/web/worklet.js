// Microphone capture: 20 ms blocks of 16-bit PCM at the AudioContext rate (16 kHz), posted to the page.
class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = 320;
    this.buf = new Int16Array(this.block);
    this.fill = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      for (let i = 0; i < ch.length; i++) {
        const s = Math.max(-1, Math.min(1, ch[i]));
        this.buf[this.fill++] = s < 0 ? s * 32768 : s * 32767;
        if (this.fill === this.block) {
          this.port.postMessage(this.buf.buffer, [this.buf.buffer]);
          this.buf = new Int16Array(this.block);
          this.fill = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("pcm-capture", PcmCapture);
