function init() {
  routeRegistry.registerStreamRoute("/stock-prices");
  routeRegistry.registerRoute("GET", "/stocks", showStockTicker);
  routeRegistry.registerRoute("POST", "/update-prices", updatePrices);
}

function showStockTicker(request) {
  const html = `
    <!DOCTYPE html>
    <html>
    <head>
      <title>Live Stock Ticker</title>
      <style>
        body {
          font-family: 'Courier New', monospace;
          margin: 0;
          padding: 20px;
          background: #000;
          color: #0f0;
        }
        h1 {
          text-align: center;
          color: #0f0;
          text-shadow: 0 0 10px #0f0;
        }
        .ticker-container {
          max-width: 1200px;
          margin: 0 auto;
        }
        .stock {
          background: #001a00;
          border: 1px solid #0f0;
          padding: 20px;
          margin: 15px 0;
          border-radius: 4px;
          display: flex;
          justify-content: space-between;
          align-items: center;
          transition: all 0.3s;
        }
        .stock.up {
          background: #001a00;
          animation: flashGreen 0.5s;
        }
        .stock.down {
          background: #1a0000;
          animation: flashRed 0.5s;
          color: #f00;
          border-color: #f00;
        }
        @keyframes flashGreen {
          0%, 100% { background: #001a00; }
          50% { background: #003300; }
        }
        @keyframes flashRed {
          0%, 100% { background: #1a0000; }
          50% { background: #330000; }
        }
        .stock-symbol {
          font-size: 1.5em;
          font-weight: bold;
        }
        .stock-name {
          font-size: 0.9em;
          opacity: 0.7;
        }
        .stock-price {
          font-size: 2em;
          font-weight: bold;
          text-align: right;
        }
        .stock-change {
          font-size: 1.2em;
          text-align: right;
        }
        .stock-change.positive {
          color: #0f0;
        }
        .stock-change.negative {
          color: #f00;
        }
        .controls {
          text-align: center;
          margin: 30px 0;
        }
        button {
          background: #0f0;
          color: #000;
          border: none;
          padding: 10px 20px;
          font-family: 'Courier New', monospace;
          font-weight: bold;
          cursor: pointer;
          margin: 0 5px;
        }
        button:hover {
          background: #0c0;
        }
        .last-update {
          text-align: center;
          opacity: 0.5;
          margin-top: 20px;
        }
      </style>
    </head>
    <body>
      <h1>üìà LIVE STOCK TICKER üìâ</h1>
      
      <div class="controls">
        <button onclick="updatePrices()">Update Prices</button>
        <button onclick="toggleAutoUpdate()">
          <span id="autoUpdateText">Start Auto-Update</span>
        </button>
      </div>
      
      <div class="ticker-container" id="stocks"></div>
      
      <div class="last-update">
        Last Update: <span id="lastUpdate">Never</span>
      </div>
      
      <script>
        const stocksContainer = document.getElementById('stocks');
        const stocks = {};
        let autoUpdateInterval = null;
        
        const eventSource = new EventSource('/stock-prices');
        
        eventSource.onmessage = function(event) {
          const data = JSON.parse(event.data);
          updateStock(data);
          document.getElementById('lastUpdate').textContent = 
            new Date().toLocaleTimeString();
        };
        
        function updateStock(data) {
          const oldPrice = stocks[data.symbol] ? stocks[data.symbol].price : data.price;
          const direction = data.price > oldPrice ? 'up' : 
                           data.price < oldPrice ? 'down' : 'same';
          
          stocks[data.symbol] = data;
          
          let stockElement = document.getElementById('stock-' + data.symbol);
          
          if (!stockElement) {
            stockElement = document.createElement('div');
            stockElement.id = 'stock-' + data.symbol;
            stockElement.className = 'stock';
            stocksContainer.appendChild(stockElement);
          }
          
          const change = data.price - oldPrice;
          const changePercent = oldPrice > 0 ? ((change / oldPrice) * 100) : 0;
          const changeClass = change >= 0 ? 'positive' : 'negative';
          const changeSign = change >= 0 ? '+' : '';
          
          stockElement.className = \`stock \${direction}\`;
          stockElement.innerHTML = \`
            <div>
              <div class="stock-symbol">\${data.symbol}</div>
              <div class="stock-name">\${data.name}</div>
            </div>
            <div>
              <div class="stock-price">$\${data.price.toFixed(2)}</div>
              <div class="stock-change \${changeClass}">
                \${changeSign}\${change.toFixed(2)} (\${changeSign}\${changePercent.toFixed(2)}%)
              </div>
            </div>
          \`;
        }
        
        function updatePrices() {
          fetch('/update-prices', { method: 'POST' });
        }
        
        function toggleAutoUpdate() {
          const button = document.getElementById('autoUpdateText');
          
          if (autoUpdateInterval) {
            clearInterval(autoUpdateInterval);
            autoUpdateInterval = null;
            button.textContent = 'Start Auto-Update';
          } else {
            autoUpdateInterval = setInterval(updatePrices, 2000);
            button.textContent = 'Stop Auto-Update';
          }
        }
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

function updatePrices(request) {
  const stocks = [
    { symbol: "AAPL", name: "Apple Inc." },
    { symbol: "GOOGL", name: "Alphabet Inc." },
    { symbol: "MSFT", name: "Microsoft Corp." },
    { symbol: "AMZN", name: "Amazon.com Inc." },
    { symbol: "TSLA", name: "Tesla Inc." },
  ];

  stocks.forEach((stock) => {
    // Generate realistic price movements
    const basePrice = {
      AAPL: 150,
      GOOGL: 2800,
      MSFT: 300,
      AMZN: 3200,
      TSLA: 700,
    }[stock.symbol];

    const volatility = 0.02; // 2% volatility
    const change = (Math.random() - 0.5) * 2 * volatility * basePrice;
    const price = basePrice + change;

    sendStreamMessage({
      symbol: stock.symbol,
      name: stock.name,
      price: price,
      timestamp: new Date().toISOString(),
    });
  });

  return {
    status: 200,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ success: true }),
  };
}

init();
