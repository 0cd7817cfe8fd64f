using Sd.Loaders.Config;

namespace Sd.Engine.Schedulers;

/// <summary>
/// diffusers PNDMScheduler with skip_prk_steps (PLMS only): N steps are N+1 UNet calls (the second timestep is
/// repeated). Step indices must be visited in order; the model-output history (ets) and the held sample live here.
/// </summary>
public sealed class PndmScheduler : Scheduler
{
    private int[] _timesteps = [];
    private readonly float _finalAlphaCumprod;
    private float[][] _ets = [];
    private int _etsCount;
    private int _etsNewest = -1;
    private int _counter;
    private float[] _curSample = [];
    private float[] _combined = [];

    public PndmScheduler(SchedulerConfig config, TimestepSpacing? spacing = null)
        : base(config, TimestepSpacing.Leading, spacing, ZeroTerminalSnr.NotASetting)
    {
        if (config.SkipPrkSteps != true)
        {
            throw new NotSupportedException("PNDM without skip_prk_steps (Runge-Kutta warm-up) is not supported");
        }
        if (Prediction == PredictionType.Sample)
        {
            // diffusers' _get_prev_sample raises ValueError for it: PLMS combines noise predictions.
            throw new ArgumentException("PNDM supports prediction_type epsilon and v_prediction, not sample", nameof(config));
        }
        // set_alpha_to_one defaults to False in PNDMScheduler.__init__ (True in DDIM's and LCM's).
        _finalAlphaCumprod = (config.SetAlphaToOne ?? false) ? 1f : AlphasCumprod[0];
    }

    protected override void Schedule(int steps, int firstStep)
    {
        int[] desc = IndexedTimesteps(steps, steps); // descending: t[0] largest
        InferenceSteps = steps;
        // plms = concat(asc[:-1], asc[-2:-1], asc[-1:])[::-1] => [asc[-1], asc[-2], asc[-2], asc[-3], ..., asc[0]];
        // with one step asc[-2:-1] is empty and the schedule is that single timestep (one plain PLMS step).
        _timesteps = steps == 1 ? [desc[0]] : [desc[0], desc[1], .. desc[1..]];
        TimestepValues = Array.ConvertAll(_timesteps, t => (float)t);
        _etsCount = 0;
        _etsNewest = -1;
        _counter = 0;
    }

    private float[] Ets(int back) => _ets[(_etsNewest - back + 4) % 4];

    public override void Step(ReadOnlySpan<float> modelOutput, int stepIndex, Span<float> sample, Func<int, float[]>? noise)
    {
        CheckStep(stepIndex, modelOutput.Length, sample.Length);
        int len = sample.Length;
        if (_ets.Length != 4 || _ets[0].Length != len)
        {
            _ets = new float[4][];
            for (int k = 0; k < 4; k++)
            {
                _ets[k] = new float[len];
            }
            _curSample = new float[len];
            _combined = new float[len];
        }
        if (stepIndex == 0)
        {
            _etsCount = 0;
            _etsNewest = -1;
            _counter = 0;
        }
        // diffusers' self.counter: calls since set_timesteps, not the step index. img2img starts past index 0, and its
        // first call still runs the first PLMS branch (one model output, the sample held for the next call).
        int counter = _counter++;
        int timestep = _timesteps[stepIndex];
        int ratio = NumTrainTimesteps / InferenceSteps;
        int prevTimestep = timestep - ratio;
        if (counter != 1)
        {
            _etsNewest = (_etsNewest + 1) % 4;
            _etsCount = Math.Min(_etsCount + 1, 4);
            modelOutput.CopyTo(_ets[_etsNewest]);
        }
        else
        {
            prevTimestep = timestep;
            timestep += ratio;
        }
        float[] combined = _combined;
        Span<float> x = sample;
        if (_etsCount == 1 && counter == 0)
        {
            modelOutput.CopyTo(combined);
            sample.CopyTo(_curSample);
        }
        else if (_etsCount == 1 && counter == 1)
        {
            float[] e1 = Ets(0);
            for (int i = 0; i < len; i++)
            {
                combined[i] = (modelOutput[i] + e1[i]) / 2f;
            }
            _curSample.CopyTo(sample);
        }
        else if (_etsCount == 2)
        {
            float[] e1 = Ets(0), e2 = Ets(1);
            for (int i = 0; i < len; i++)
            {
                combined[i] = (3f * e1[i] - e2[i]) / 2f;
            }
        }
        else if (_etsCount == 3)
        {
            float[] e1 = Ets(0), e2 = Ets(1), e3 = Ets(2);
            for (int i = 0; i < len; i++)
            {
                combined[i] = (23f * e1[i] - 16f * e2[i] + 5f * e3[i]) / 12f;
            }
        }
        else
        {
            float[] e1 = Ets(0), e2 = Ets(1), e3 = Ets(2), e4 = Ets(3);
            const float c = (float)(1.0 / 24);
            for (int i = 0; i < len; i++)
            {
                combined[i] = c * (55f * e1[i] - 59f * e2[i] + 37f * e3[i] - 9f * e4[i]);
            }
        }
        PrevSample(x, timestep, prevTimestep, combined);
    }

    private void PrevSample(Span<float> sample, int timestep, int prevTimestep, float[] modelOutput)
    {
        float a = AlphasCumprod[timestep];
        float aPrev = prevTimestep >= 0 ? AlphasCumprod[prevTimestep] : _finalAlphaCumprod;
        float b = 1f - a;
        float bPrev = 1f - aPrev;
        float sampleCoeff = MathF.Sqrt(aPrev / a);
        float denom = a * MathF.Sqrt(bPrev) + MathF.Sqrt(a * b * aPrev);
        float diff = aPrev - a;
        bool v = Prediction == PredictionType.VPrediction;
        float sa = MathF.Sqrt(a), sb = MathF.Sqrt(b);
        for (int i = 0; i < sample.Length; i++)
        {
            float x = sample[i];
            float m = v ? sa * modelOutput[i] + sb * x : modelOutput[i];
            sample[i] = sampleCoeff * x - diff * m / denom;
        }
    }

    protected override void Noise(ReadOnlySpan<float> original, ReadOnlySpan<float> noise, int stepIndex, Span<float> destination)
    {
        DdimScheduler.AddNoiseDiscrete(AlphasCumprod, _timesteps[stepIndex], original, noise, destination);
    }
}
