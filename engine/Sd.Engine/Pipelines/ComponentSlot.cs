using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Sd.Engine.Pipelines;

/// <summary>
/// One pipeline component (text encoder, UNet or VAE) that is loaded on first use and can be freed and loaded again,
/// timing its loads (a generation reports the load time it caused).
/// </summary>
internal sealed class ComponentSlot<T> : IDisposable where T : class, IDisposable
{
    private readonly string _name;
    private readonly Func<T> _load;
    private readonly ILogger _logger;
    private T? _component;
    private bool _disposed;

    public ComponentSlot(string name, Func<T> load, ILogger logger)
    {
        _name = name;
        _load = load;
        _logger = logger;
    }

    public bool IsLoaded => _component != null;

    /// <summary>The component, loading it (and adding the time to <paramref name="loading"/>) if it is not in memory.</summary>
    public T Get(ref TimeSpan loading)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_component != null)
        {
            return _component;
        }
        long start = Stopwatch.GetTimestamp();
        _component = _load();
        TimeSpan took = Stopwatch.GetElapsedTime(start);
        loading += took;
        _logger.LogInformation("Loaded the {Component} in {Seconds:F1} s", _name, took.TotalSeconds);
        return _component;
    }

    /// <summary>Frees the component's memory; the next <see cref="Get"/> loads it again.</summary>
    public void Unload()
    {
        if (_component != null)
        {
            _component.Dispose();
            _component = null;
            _logger.LogDebug("Unloaded the {Component}", _name);
        }
    }

    /// <summary>Frees the component for good: a later <see cref="Get"/> throws instead of loading it again.</summary>
    public void Dispose()
    {
        _disposed = true;
        Unload();
    }
}
