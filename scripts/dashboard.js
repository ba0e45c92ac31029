function init() {
  routeRegistry.registerStreamRoute("/system-stats");
  routeRegistry.registerRoute("GET", "/dashboard", showDashboard);
  routeRegistry.registerRoute("POST", "/update-stats", updateSystemStats);
}

function showDashboard(request) {
  const html = `
    <!DOCTYPE html>
    <html>
    <head>
      <title>Live Dashboard</title>
      <style>
        body {
          font-family: Arial, sans-serif;
          margin: 0;
          padding: 20px;
          background: #1a1a2e;
          color: white;
        }
        h1 {
          text-align: center;
          margin-bottom: 30px;
        }
        .dashboard {
          display: grid;
          grid-template-columns: repeat(auto-fit, minmax(300px, 1fr));
          gap: 20px;
          max-width: 1400px;
          margin: 0 auto;
        }
        .card {
          background: #16213e;
          border-radius: 12px;
          padding: 25px;
          box-shadow: 0 4px 6px rgba(0,0,0,0.3);
        }
        .card-title {
          font-size: 1.1em;
          margin-bottom: 15px;
          color: #0f9;
          display: flex;
          align-items: center;
          gap: 10px;
        }
        .metric {
          font-size: 3em;
          font-weight: bold;
          margin: 20px 0;
          text-align: center;
        }
        .metric-label {
          text-align: center;
          color: #999;
          font-size: 0.9em;
        }
        .status-indicator {
          width: 12px;
          height: 12px;
          border-radius: 50%;
          display: inline-block;
          animation: pulse 2s infinite;
        }
        .status-online {
          background: #0f9;
        }
        .status-warning {
          background: #fa0;
        }
        .status-offline {
          background: #f44;
        }
        @keyframes pulse {
          0%, 100% { opacity: 1; }
          50% { opacity: 0.5; }
        }
        .progress-bar {
          width: 100%;
          height: 30px;
          background: #0e1621;
          border-radius: 15px;
          overflow: hidden;
          margin: 15px 0;
        }
        .progress-fill {
          height: 100%;
          background: linear-gradient(90deg, #0f9 0%, #0cf 100%);
          transition: width 0.5s ease;
          display: flex;
          align-items: center;
          justify-content: center;
          font-weight: bold;
        }
        .chart {
          height: 150px;
          background: #0e1621;
          border-radius: 8px;
          margin-top: 15px;
          position: relative;
          overflow: hidden;
        }
        .chart-bar {
          position: absolute;
          bottom: 0;
          width: 8%;
          background: linear-gradient(180deg, #0cf 0%, #0f9 100%);
          transition: height 0.3s ease;
        }
        .stats-list {
          list-style: none;
          padding: 0;
        }
        .stats-list li {
          padding: 10px 0;
          border-bottom: 1px solid #0e1621;
          display: flex;
          justify-content: space-between;
        }
        .stats-list li:last-child {
          border-bottom: none;
        }
        button {
          background: #0f9;
          color: #1a1a2e;
          border: none;
          padding: 10px 20px;
          border-radius: 6px;
          cursor: pointer;
          font-weight: bold;
          margin-top: 15px;
        }
        button:hover {
          background: #0cf;
        }
      </style>
    </head>
    <body>
      <h1>üìä Live System Dashboard</h1>
      
      <div class="dashboard">
        <div class="card">
          <div class="card-title">
            <span class="status-indicator status-online"></span>
            Server Status
          </div>
          <div class="metric" id="uptime">0</div>
          <div class="metric-label">Uptime (hours)</div>
        </div>
        
        <div class="card">
          <div class="card-title">CPU Usage</div>
          <div class="metric" id="cpu">0%</div>
          <div class="progress-bar">
            <div class="progress-fill" id="cpuBar" style="width: 0%"></div>
          </div>
        </div>
        
        <div class="card">
          <div class="card-title">Memory Usage</div>
          <div class="metric" id="memory">0%</div>
          <div class="progress-bar">
            <div class="progress-fill" id="memoryBar" style="width: 0%"></div>
          </div>
        </div>
        
        <div class="card">
          <div class="card-title">Active Users</div>
          <div class="metric" id="users">0</div>
          <div class="metric-label">Connected</div>
        </div>
        
        <div class="card">
          <div class="card-title">Request Rate</div>
          <div class="metric" id="requests">0</div>
          <div class="metric-label">Requests/sec</div>
          <div class="chart" id="requestChart"></div>
        </div>
        
        <div class="card">
          <div class="card-title">System Info</div>
          <ul class="stats-list">
            <li><span>Total Requests</span><span id="totalRequests">0</span></li>
            <li><span>Error Rate</span><span id="errorRate">0%</span></li>
            <li><span>Avg Response</span><span id="avgResponse">0ms</span></li>
            <li><span>Database</span><span id="dbStatus">‚óè</span></li>
          </ul>
          <button onclick="triggerUpdate()">Refresh Data</button>
        </div>
      </div>
      
      <script>
        const eventSource = new EventSource('/system-stats');
        const requestHistory = [];
        const maxHistory = 10;
        
        eventSource.onmessage = function(event) {
          const data = JSON.parse(event.data);
          updateDashboard(data);
        };
        
        function updateDashboard(data) {
          // Update metrics
          document.getElementById('uptime').textContent = data.uptime || 0;
          document.getElementById('cpu').textContent = data.cpu + '%';
          document.getElementById('memory').textContent = data.memory + '%';
          document.getElementById('users').textContent = data.activeUsers || 0;
          document.getElementById('requests').textContent = data.requestRate || 0;
          
          // Update progress bars
          document.getElementById('cpuBar').style.width = data.cpu + '%';
          document.getElementById('cpuBar').textContent = data.cpu + '%';
          document.getElementById('memoryBar').style.width = data.memory + '%';
          document.getElementById('memoryBar').textContent = data.memory + '%';
          
          // Update stats
          document.getElementById('totalRequests').textContent = 
            (data.totalRequests || 0).toLocaleString();
          document.getElementById('errorRate').textContent = (data.errorRate || 0) + '%';
          document.getElementById('avgResponse').textContent = (data.avgResponse || 0) + 'ms';
          
          const dbStatus = document.getElementById('dbStatus');
          dbStatus.textContent = '‚óè ' + (data.dbConnected ? 'Connected' : 'Offline');
          dbStatus.style.color = data.dbConnected ? '#0f9' : '#f44';
          
          // Update request chart
          requestHistory.push(data.requestRate || 0);
          if (requestHistory.length > maxHistory) {
            requestHistory.shift();
          }
          updateChart();
        }
        
        function updateChart() {
          const chart = document.getElementById('requestChart');
          chart.innerHTML = '';
          
          const max = Math.max(...requestHistory, 1);
          
          requestHistory.forEach((value, index) => {
            const bar = document.createElement('div');
            bar.className = 'chart-bar';
            bar.style.left = (index * 10) + '%';
            bar.style.height = ((value / max) * 100) + '%';
            chart.appendChild(bar);
          });
        }
        
        function triggerUpdate() {
          fetch('/update-stats', { method: 'POST' });
        }
        
        // Auto-refresh every 5 seconds
        setInterval(triggerUpdate, 5000);
        
        // Initial update
        triggerUpdate();
      </script>
    </body>
    </html>
  `;

  return {
    status: 200,
    headers: { "Content-Type": "text/html" },
    body: html,
  };
}

function updateSystemStats(request) {
  // Generate mock system statistics
  const stats = {
    uptime: Math.floor(Math.random() * 100),
    cpu: Math.floor(Math.random() * 100),
    memory: Math.floor(Math.random() * 80) + 20,
    activeUsers: Math.floor(Math.random() * 50),
    requestRate: Math.floor(Math.random() * 100),
    totalRequests: Math.floor(Math.random() * 10000),
    errorRate: Math.floor(Math.random() * 5),
    avgResponse: Math.floor(Math.random() * 200) + 50,
    dbConnected: Math.random() > 0.1,
  };

  sendStreamMessage(stats);

  return {
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ success: true }),
  };
}

init();
